"""Invitations: single-use, site-bound enrolment tokens (only a hash is ever stored). A
coordinator invites for their own site (`invite`), lists the open ones and revokes one; `issue`
is the trusted step underneath, for the operator's CLI and the other use cases that hand out a
link (a new phone, a family helper)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import col, select

from bot.db.models import Invitation
from bot.domain.tokens import InvitationStatus, hash_token, invitation_status, new_token
from bot.services.audit import audit
from bot.services.coord_access import Actor, NotFound, NotPermitted, check_site, normalize_subject, refuse
from bot.services.queries import patient_by_subject
from bot.services.refusal import Refused
from bot.services.runtime import Runtime


class InviteRefused(Refused):
    """code: bad_subject | enrolled | unknown_site | bad_expiry"""


@dataclass(frozen=True)
class IssuedInvitation:
    token: str
    link: str
    site_id: str
    subject_id: str | None
    expires_at: datetime
    invitation_id: int


@dataclass(frozen=True)
class OpenInvitation:
    id: int
    site_id: str
    subject_id: str | None
    purpose: str
    created_at: object
    expires_at: object
    created_by: str


def expiry_days(settings) -> int:
    """Configured invitation lifetime (`[trial] invitation_expiry_days`)."""
    return settings.trial.invitation_expiry_days


async def issue(
    rt: Runtime,
    *,
    site_id: str,
    subject_id: str | None = None,
    expires_days: int = 7,
    actor_kind: str = "operator",
    actor_id: str | int = "cli",
    purpose: str = "enrol",
    update_id: int | None = None,
) -> IssuedInvitation:
    """A new token for this site, without asking who may (the caller has decided that)."""
    try:
        rt.settings.site(site_id)
    except KeyError:
        raise InviteRefused("unknown_site", f"unknown site {site_id!r}") from None
    if not 1 <= expires_days <= 90:
        raise InviteRefused("bad_expiry", "expiry must be between 1 and 90 days")
    now = rt.now()
    token = new_token()
    async with rt.session() as session:
        invitation = Invitation(
            token_hash=hash_token(token), site_id=site_id, subject_id=subject_id, purpose=purpose,
            created_by=f"{actor_kind}:{actor_id}", created_at=now, expires_at=now + timedelta(days=expires_days),
        )
        session.add(invitation)
        await session.flush()
        audit(session, at=now, actor_kind=actor_kind, actor_id=actor_id, action="invitation.issued",
              entity="invitation", entity_id=invitation.id,
              after={"site_id": site_id, "subject_id": subject_id, "purpose": purpose,
                     "expires_at": invitation.expires_at.isoformat()}, update_id=update_id)
        await session.commit()
    return IssuedInvitation(token=token, link=rt.settings.invitation_link(token), site_id=site_id,
                            subject_id=subject_id, expires_at=invitation.expires_at, invitation_id=invitation.id)


async def find_by_hash(session, *, token_hash: str | None) -> Invitation | None:
    if not token_hash:
        return None
    return (await session.exec(select(Invitation).where(Invitation.token_hash == token_hash))).first()


async def find(session, *, token: str) -> Invitation | None:
    return (await session.exec(select(Invitation).where(Invitation.token_hash == hash_token(token)))).first()


# --- a coordinator's invitations ------------------------------------------------------------

def site_for(rt: Runtime, actor: Actor, subject_id: str | None, site_id: str | None) -> str | None:
    """The site an invitation is for: the one asked for; else the site named by the subject id's
    prefix (SH-017 → SH; refused later if it is not the actor's); else the actor's own site."""
    if site_id:
        return site_id
    known = {s.id for s in rt.settings.sites}
    prefix = (subject_id or "").split("-", 1)[0]
    if prefix in known:
        return prefix
    return actor.home_site


async def invite(rt: Runtime, actor: Actor, *, subject_id: str | None = None, site_id: str | None = None,
                 purpose: str = "enrol", update_id: int | None = None) -> IssuedInvitation:
    """A coordinator's (or the operator's) invitation: for a site the actor may act on, and not
    for a subject who is already enrolled."""
    if subject_id is not None and normalize_subject(subject_id) is None:
        raise InviteRefused("bad_subject")
    subject_id = normalize_subject(subject_id)
    site_id = site_for(rt, actor, subject_id, site_id)
    if site_id is None or site_id not in {s.id for s in rt.settings.sites}:
        raise InviteRefused("unknown_site")
    async with rt.session() as session:
        await check_site(session, rt, actor, site_id=site_id, what="invite", entity="site", entity_id=site_id,
                         update_id=update_id)
        if purpose == "enrol" and subject_id and await patient_by_subject(session, subject_id=subject_id):
            raise InviteRefused("enrolled")
    return await issue(rt, site_id=site_id, subject_id=subject_id, expires_days=expiry_days(rt.settings),
                                   actor_kind=actor.kind, actor_id=actor.id, purpose=purpose, update_id=update_id)


async def list_open(rt: Runtime, actor: Actor, *, site_id: str | None = None) -> list[OpenInvitation]:
    now = rt.now()
    async with rt.session() as session:
        statement = (select(Invitation)
                     .where(col(Invitation.used_at).is_(None), col(Invitation.revoked_at).is_(None),
                            Invitation.expires_at > now)
                     .order_by(col(Invitation.created_at), col(Invitation.id)))
        rows = (await session.exec(statement)).all()
    return [OpenInvitation(r.id, r.site_id, r.subject_id, r.purpose, r.created_at, r.expires_at, r.created_by)
            for r in rows if actor.may(r.site_id) and (site_id is None or r.site_id == site_id)]


async def revoke(rt: Runtime, actor: Actor, *, invitation_id: int, update_id: int | None = None) -> str:
    """"revoked", or why not: "used", "expired", "revoked_already". Raises NotFound / NotPermitted."""
    now = rt.now()
    async with rt.session() as session:
        invitation = await session.get(Invitation, invitation_id)
        if invitation is None:
            refuse(session, at=now, actor_kind=actor.kind, actor_id=actor.id, what="revoke_invitation",
                   entity="invitation", entity_id=invitation_id, update_id=update_id)
            await session.commit()
            raise NotFound(str(invitation_id))
        await check_site(session, rt, actor, site_id=invitation.site_id, what="revoke_invitation",
                         entity="invitation", entity_id=invitation_id, update_id=update_id)
        status = invitation_status(expires_at=invitation.expires_at, used_at=invitation.used_at,
                                   revoked_at=invitation.revoked_at, now=now)
        if status is InvitationStatus.REVOKED:
            return "revoked_already"
        if status is not InvitationStatus.VALID:
            return status.value
        changed = await session.exec(update(Invitation).where(
            Invitation.id == invitation_id, col(Invitation.used_at).is_(None), col(Invitation.revoked_at).is_(None)
        ).values(revoked_at=now, revoked_by=actor.label[:32]))
        if changed.rowcount != 1:
            return "used"
        audit(session, at=now, actor_kind=actor.kind, actor_id=actor.id, action="invitation.revoked",
              entity="invitation", entity_id=invitation_id, before={"status": "valid"},
              after={"status": "revoked", "site_id": invitation.site_id, "subject_id": invitation.subject_id},
              update_id=update_id)
        await session.commit()
    return "revoked"


__all__ = ["InviteRefused", "IssuedInvitation", "NotFound", "NotPermitted", "OpenInvitation", "expiry_days", "find",
           "find_by_hash", "invite", "issue", "list_open", "revoke", "site_for"]
