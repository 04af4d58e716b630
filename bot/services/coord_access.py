"""Who may do what on the coordinator side: configured ids per site, admins see every site.

Every coordinator use case takes an `Actor` and checks it against the site of the thing it
touches, on every call; a refusal is audited as `access.refused`. The CLI acts as an operator
(all sites, or the one given with --site).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.channels.port import Account
from bot.db.models import Patient
from bot.services.audit import audit
from bot.services.queries import patient_by_subject
from bot.services.runtime import Runtime

SUBJECT_PATTERN = re.compile(r"\A[A-Z0-9][A-Z0-9-]{0,31}\Z")


class NotPermitted(Exception):
    """The actor may not act on this site (already audited by the service that raised it)."""


class NotFound(Exception):
    """No such patient, invitation, course or alert within the actor's reach."""


@dataclass(frozen=True)
class Actor:
    kind: str  # coordinator | operator
    id: str  # the coordinator's account key, or "cli"
    home_site: str | None  # the site a coordinator is listed at; None for operators
    sites: frozenset[str] | None  # sites the actor may act on; None = all

    def may(self, site_id: str) -> bool:
        return self.sites is None or site_id in self.sites

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.id}"

    @property
    def account(self) -> Account | None:
        return Account.parse(self.id) if self.kind == "coordinator" else None


def coordinator_actor(rt: Runtime, account: Account) -> Actor | None:
    """The configured coordinator with this account, looked up afresh on every call."""
    found = rt.staff(account)
    if found is None:
        return None
    site, person = found
    sites = None if person.role == "admin" else frozenset({site.id})
    return Actor(kind="coordinator", id=account.key, home_site=site.id, sites=sites)


def operator_actor(site_id: str | None = None) -> Actor:
    return Actor(kind="operator", id="cli", home_site=site_id, sites=frozenset({site_id}) if site_id else None)


def normalize_subject(raw: str | None) -> str | None:
    """Subject ids are upper-case letters, digits and hyphens (e.g. SH-017); None if malformed."""
    if raw is None:
        return None
    value = raw.strip().upper()
    return value if SUBJECT_PATTERN.match(value) else None


def refuse(session, *, at, actor_kind: str, actor_id: str | int, what: str, entity: str | None = None,
           entity_id: str | int | None = None, update_id: int | None = None) -> None:
    audit(session, at=at, actor_kind=actor_kind, actor_id=actor_id, action="access.refused", entity=entity,
          entity_id=entity_id, reason=what, update_id=update_id)


async def refuse_stranger(rt: Runtime, *, account: Account, what: str, update_id: int | None = None) -> None:
    """Someone who is not a configured coordinator tried a coordinator command or button."""
    async with rt.session() as session:
        refuse(session, at=rt.now(), actor_kind="user", actor_id=account, what=what, update_id=update_id)
        await session.commit()


async def check_site(session, rt: Runtime, actor: Actor, *, site_id: str, what: str, entity: str,
                     entity_id: str | int | None, update_id: int | None) -> None:
    """Raise NotPermitted unless the actor may act on this site. The refusal is audited and
    committed at once, so call this before changing anything in the session."""
    if actor.may(site_id):
        return
    refuse(session, at=rt.now(), actor_kind=actor.kind, actor_id=actor.id, what=what, entity=entity,
           entity_id=entity_id, update_id=update_id)
    await session.commit()
    raise NotPermitted(what)


async def patient_in_reach(session, rt: Runtime, actor: Actor, *, subject_id: str | None, what: str,
                           update_id: int | None = None) -> Patient:
    """The patient with this subject id if the actor may act on their site. A patient of
    another site is refused (audited); the refusal does not say whether the patient exists."""
    subject_id = normalize_subject(subject_id)
    patient = await patient_by_subject(session, subject_id=subject_id) if subject_id else None
    if patient is None:
        raise NotFound(subject_id or "")
    await check_site(session, rt, actor, site_id=patient.site_id, what=what, entity="patient",
                     entity_id=patient.subject_id, update_id=update_id)
    return patient


async def refuse_actor(rt: Runtime, actor: Actor, *, what: str, entity: str | None = None,
                       entity_id: str | int | None = None, update_id: int | None = None) -> None:
    async with rt.session() as session:
        refuse(session, at=rt.now(), actor_kind=actor.kind, actor_id=actor.id, what=what, entity=entity,
               entity_id=entity_id, update_id=update_id)
        await session.commit()
