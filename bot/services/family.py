"""Family helpers (issue 14, part 4): a son or daughter who helps a patient, with the patient's
explicit consent.

- The patient gives consent in the chat (`/helpers`) and may withdraw it at any time; withdrawal
  removes every helper at once and cancels their queued notices. Withdrawal from the study cuts
  helpers off too (a helper counts only while their patient is not withdrawn).
- Invitations are ordinary single-use invitations (`purpose = "helper"`, expiry, revocation,
  throttling: bot.services.enrolment.check_token), created by the patient after consenting or by
  a coordinator. Either way the helper is bound only once the patient has consented.
- A helper is bound to exactly one patient, at most `[helpers] max_per_patient` per patient, and is
  named everywhere outside the routing of messages by a pseudonymous id `H-<site>-<n>`.
- What a helper gets is in scheduler/family.py (notices) and the channel adapter's family handlers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.domain.outbox import OutboxKind, OutboxState
from bot.domain.status import HelperStatus, PatientStatus
from bot.channels.port import Account, Recipient
from bot.db.models import Helper, Invitation, Outbox, Patient
# enrolment as a module: it needs patients, which needs this module (a helper leaves with a withdrawal)
from bot.services import dialogs, enrolment, invitations
from bot.services.audit import audit
from bot.services.coord_access import Actor, patient_in_reach
from bot.services.outbox import enqueue
from bot.services.queries import helper_by_account, patient_by_account
from bot.services.runtime import Runtime
from bot.services.refusal import Refused

PURPOSE = "helper"  # Invitation.purpose
NOTICE_KIND = OutboxKind.HELPER_NOTICE  # the outbox kind; payload["notice"] says which
JOINED, COURSE_START, NOT_REPORTED = "joined", "course_start", "not_reported"
ACTIVE, REMOVED = HelperStatus.ACTIVE, HelperStatus.REMOVED
DIALOG = "helper_join"
DIALOG_TTL = timedelta(hours=24)


class HelperRefused(Refused):
    """code: off | no_consent | full | withdrawn | invalid | is_patient | is_helper | not_found."""


@dataclass(frozen=True)
class HelperView:
    helper: Helper
    patient: Patient


def _enabled(rt: Runtime) -> None:
    if not rt.settings.helpers.enabled:
        raise HelperRefused("off")


def _of(account: Account):
    return (Helper.channel == account.channel, Helper.account == account.id)


async def active_helper(session: AsyncSession, *, account: Account) -> HelperView | None:
    found = await helper_by_account(session, account=account)
    return HelperView(*found) if found else None


async def helper_role(rt: Runtime, *, account: Account) -> tuple[HelperView | None, Helper | None]:
    """(this user's helper role if it counts now, else their former helper row to tell them they
    are cut off), in one query. A former helper who is a patient now is neither."""
    async with rt.single() as session:  # reads only
        row = (await session.exec(select(Helper, Patient).join(Patient, Patient.id == Helper.patient_id)
                                  .where(*_of(account))
                                  .order_by(col(Helper.id).desc()).limit(1))).first()
        if row is None:
            return None, None
        helper, patient = row
        if helper.status == ACTIVE and patient.helper_consent_at is not None and patient.status != PatientStatus.WITHDRAWN:
            return HelperView(helper, patient), None
        if await patient_by_account(session, account=account) is not None:
            return None, None
        return None, helper


async def helpers_of(session: AsyncSession, *, patient_id: int) -> list[Helper]:
    return list((await session.exec(select(Helper).where(Helper.patient_id == patient_id, Helper.status == ACTIVE)
                                    .order_by(col(Helper.id)))).all())


async def cancel_notices(session: AsyncSession, *, patient_id: int, now: datetime, to: Recipient | None = None,
                         reason: str) -> None:
    """Queued helper notices of this patient (to this recipient) are never sent."""
    where = [Outbox.kind == NOTICE_KIND, Outbox.patient_id == patient_id, Outbox.state == OutboxState.PENDING]
    if to is not None:
        where += [Outbox.channel == to.channel, Outbox.address == to.address]
    await session.exec(update(Outbox).where(*where).values(state=OutboxState.SKIPPED, finished_at=now, last_error=reason))


# --- the patient's consent ------------------------------------------------------------------

async def set_consent(rt: Runtime, *, patient: Patient, consent: bool, update_id: int | None = None) -> Patient:
    """Give or withdraw the consent to family helpers. Withdrawing removes every helper at once."""
    _enabled(rt)
    now = rt.now()
    async with rt.session() as session:
        row = await session.get(Patient, patient.id, populate_existing=True)
        if row is None or row.status == PatientStatus.WITHDRAWN:
            raise HelperRefused("withdrawn")
        if (row.helper_consent_at is not None) == consent:
            return row  # a second tap changes nothing
        before = {"helper_consent_at": row.helper_consent_at.isoformat() if row.helper_consent_at else None}
        row.helper_consent_at = now if consent else None
        session.add(row)
        removed = []
        if not consent:
            for helper in await helpers_of(session, patient_id=row.id):
                _mark_removed(session, helper, now=now, actor_kind="patient", actor_id=row.subject_id,
                              why="consent_withdrawn", update_id=update_id)
                removed.append(helper.helper_id)
            await cancel_notices(session, patient_id=row.id, now=now, reason="helper consent withdrawn")
        audit(session, at=now, actor_kind="patient", actor_id=row.subject_id,
              action="helper.consent_given" if consent else "helper.consent_withdrawn", entity="patient",
              entity_id=row.subject_id, before=before,
              after={"helper_consent_at": now.isoformat() if consent else None, "helpers_removed": removed},
              update_id=update_id)
        await session.commit()
        await session.refresh(row)
    return row


def _mark_removed(session, helper: Helper, *, now: datetime, actor_kind: str, actor_id: str | int, why: str,
                  note: str | None = None, update_id: int | None = None) -> None:
    """why: removed | consent_withdrawn; note: the coordinator's reason."""
    by = "patient" if actor_kind == "patient" else f"{actor_kind}:{actor_id}"
    helper.status, helper.removed_at, helper.removed_by, helper.removal_reason = REMOVED, now, by[:48], why
    session.add(helper)
    audit(session, at=now, actor_kind=actor_kind, actor_id=actor_id, action="helper.removed", entity="helper",
          entity_id=helper.helper_id, before={"status": ACTIVE}, after={"status": REMOVED, "why": why},
          reason=note, update_id=update_id)


# --- invitations --------------------------------------------------------------------------

async def _room_for_one(session, rt: Runtime, patient: Patient) -> None:
    if patient.status == PatientStatus.WITHDRAWN:
        raise HelperRefused("withdrawn")
    if len(await helpers_of(session, patient_id=patient.id)) >= rt.settings.helpers.max_per_patient:
        raise HelperRefused("full")


async def invite_by_patient(rt: Runtime, *, patient: Patient,
                            update_id: int | None = None) -> invitations.IssuedInvitation:
    """The patient's own invitation: only after their consent."""
    _enabled(rt)
    async with rt.session() as session:
        row = await session.get(Patient, patient.id, populate_existing=True)
        if row.helper_consent_at is None:
            raise HelperRefused("no_consent")
        await _room_for_one(session, rt, row)
    return await invitations.issue(rt, site_id=row.site_id, subject_id=row.subject_id, purpose=PURPOSE,
                                   expires_days=rt.settings.helpers.invitation_days, actor_kind="patient",
                                   actor_id=row.subject_id, update_id=update_id)


async def invite_by_coordinator(rt: Runtime, actor: Actor, *, subject_id: str,
                                update_id: int | None = None) -> tuple[invitations.IssuedInvitation, Patient]:
    """A coordinator's invitation; the helper is still bound only after the patient's consent."""
    _enabled(rt)
    async with rt.session() as session:
        patient = await patient_in_reach(session, rt, actor, subject_id=subject_id, what="helper_invite",
                                         update_id=update_id)
        await _room_for_one(session, rt, patient)
    issued = await invitations.issue(rt, site_id=patient.site_id, subject_id=patient.subject_id, purpose=PURPOSE,
                                     expires_days=rt.settings.helpers.invitation_days, actor_kind=actor.kind,
                                     actor_id=actor.id, update_id=update_id)
    return issued, patient


async def is_helper_token(rt: Runtime, *, token: str) -> bool:
    async with rt.session() as session:
        invitation = await invitations.find(session, token=token)
    return invitation is not None and invitation.purpose == PURPOSE


# --- joining ------------------------------------------------------------------------------

async def _joinable(session, rt: Runtime, *, account: Account, subject_id: str | None) -> Patient:
    patient = (await session.exec(select(Patient).where(Patient.subject_id == subject_id))).first()
    if patient is None or patient.status == PatientStatus.WITHDRAWN:
        raise HelperRefused("withdrawn")
    if (patient.channel, patient.account) == (account.channel, account.id) or \
            await patient_by_account(session, account=account) is not None:
        raise HelperRefused("is_patient")
    if rt.staff(account) is not None or \
            await active_helper(session, account=account) is not None:
        raise HelperRefused("is_helper")
    if patient.helper_consent_at is None:
        raise HelperRefused("no_consent")
    await _room_for_one(session, rt, patient)
    return patient


async def start_joining(rt: Runtime, *, account: Account, token: str, locale: str,
                        update_id: int | None = None) -> dict:
    """A helper opened their link: check it (same rules as enrolment) and the patient's consent,
    then keep the half-done dialog in the database. Nothing is bound yet."""
    _enabled(rt)
    pending = await enrolment.check_token(rt, account=account, token=token, update_id=update_id)
    if pending.purpose != PURPOSE:
        raise HelperRefused("invalid")
    async with rt.session() as session:
        await _joinable(session, rt, account=account, subject_id=pending.subject_id)
        state = {"token_hash": pending.token_hash, "site": pending.site_id, "locale": locale}
        await dialogs.put(session, channel_user_id=account.key, kind=DIALOG,
                          payload=state, now=rt.now(), ttl=DIALOG_TTL)
        await session.commit()
    return state


async def pending_join(rt: Runtime, *, account: Account) -> dict | None:
    async with rt.session() as session:
        return await dialogs.get(session, channel_user_id=account.key, kind=DIALOG,
                                 now=rt.now())


async def choose_language(rt: Runtime, *, account: Account, locale: str) -> dict | None:
    who = account.key
    async with rt.session() as session:
        state = await dialogs.get(session, channel_user_id=who, kind=DIALOG, now=rt.now())
        if state is None:
            return None
        state["locale"] = locale
        await dialogs.put(session, channel_user_id=who, kind=DIALOG, payload=state, now=rt.now(), ttl=DIALOG_TTL)
        await session.commit()
    return state


async def decline(rt: Runtime, *, account: Account, update_id: int | None = None) -> None:
    async with rt.session() as session:
        await dialogs.clear(session, channel_user_id=account.key, kind=DIALOG)
        audit(session, at=rt.now(), actor_kind="user", actor_id=account, action="helper.declined",
              update_id=update_id)
        await session.commit()


async def join(rt: Runtime, *, account: Account, address: str, update_id: int | None = None) -> HelperView:
    """Spend the token and bind this account (reached at `address`) to the patient, re-checking everything (the
    consent may have been withdrawn, the token revoked or another helper bound meanwhile)."""
    _enabled(rt)
    state = await pending_join(rt, account=account)
    if state is None:
        raise HelperRefused("expired")
    pending = await enrolment.check_token(rt, account=account, token_hash=state["token_hash"],
                                update_id=update_id)
    now = rt.now()
    async with rt.session() as session:
        patient = await _joinable(session, rt, account=account, subject_id=pending.subject_id)
        invitation = await invitations.find_by_hash(session, token_hash=pending.token_hash)
        spent = await session.exec(update(Invitation).where(
            Invitation.id == invitation.id, col(Invitation.used_at).is_(None), col(Invitation.revoked_at).is_(None))
            .values(used_at=now, used_by_account=account.key))
        if spent.rowcount != 1:
            raise HelperRefused("invalid")
        count = (await session.exec(select(func.count()).select_from(Helper).join(Patient, Patient.id == Helper.patient_id)
                                    .where(Patient.site_id == patient.site_id))).one()
        helper = Helper(helper_id=f"H-{patient.site_id}-{count + 1:03d}", patient_id=patient.id,
                        channel=account.channel, account=account.id, address=address, locale=state["locale"], status=ACTIVE,
                        invitation_id=invitation.id, joined_at=now)
        session.add(helper)
        await session.flush()
        audit(session, at=now, actor_kind="helper", actor_id=helper.helper_id, action="invitation.used",
              entity="invitation", entity_id=invitation.id, update_id=update_id)
        audit(session, at=now, actor_kind="helper", actor_id=helper.helper_id, action="helper.joined", entity="helper",
              entity_id=helper.helper_id, after={"subject_id": patient.subject_id, "locale": helper.locale},
              update_id=update_id)
        if patient.address:  # the patient hears of it, and how to remove the helper
            await enqueue(session, kind=NOTICE_KIND, to=patient.recipient, due_at=now, now=now,
                          patient_id=patient.id, payload={"notice": JOINED, "helper": helper.id},
                          dedupe_key=f"helper:joined:{helper.id}")
        await dialogs.clear(session, channel_user_id=account.key, kind=DIALOG)
        await session.commit()
        await session.refresh(helper)
        await session.refresh(patient)
    rt.wake()
    return HelperView(helper, patient)


# --- removal ------------------------------------------------------------------------------

async def remove_by_patient(rt: Runtime, *, patient: Patient, helper_row_id: int,
                            update_id: int | None = None) -> Helper:
    now = rt.now()
    async with rt.session() as session:
        helper = await session.get(Helper, helper_row_id)
        if helper is None or helper.patient_id != patient.id:
            raise HelperRefused("not_found")
        if helper.status != ACTIVE:
            return helper
        _mark_removed(session, helper, now=now, actor_kind="patient", actor_id=patient.subject_id, why="removed",
                      update_id=update_id)
        await cancel_notices(session, patient_id=patient.id, now=now, to=helper.recipient, reason="helper removed")
        await session.commit()
        await session.refresh(helper)
    return helper


async def remove_by_coordinator(rt: Runtime, actor: Actor, *, helper_id: str, reason: str,
                                update_id: int | None = None) -> tuple[Helper, Patient]:
    if not reason.strip():
        raise HelperRefused("reason")
    now = rt.now()
    async with rt.session() as session:
        helper = (await session.exec(select(Helper).where(Helper.helper_id == helper_id.strip().upper()))).first()
        if helper is None:
            raise HelperRefused("not_found")
        patient = await session.get(Patient, helper.patient_id)
        await patient_in_reach(session, rt, actor, subject_id=patient.subject_id, what="helper_remove",
                               update_id=update_id)
        if helper.status != ACTIVE:
            raise HelperRefused("not_found")
        _mark_removed(session, helper, now=now, actor_kind=actor.kind, actor_id=actor.id, why="removed",
                      note=reason.strip(), update_id=update_id)
        await cancel_notices(session, patient_id=patient.id, now=now, to=helper.recipient, reason="helper removed")
        await session.commit()
        await session.refresh(helper)
    return helper, patient


async def list_for(rt: Runtime, *, patient: Patient) -> tuple[Patient, list[Helper]]:
    async with rt.session() as session:
        row = await session.get(Patient, patient.id, populate_existing=True)
        return row, await helpers_of(session, patient_id=patient.id)
