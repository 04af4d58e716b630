"""Enrolment: check a token, then (after language, consent and time) bind the patient."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, update
from sqlmodel import select

from bot.domain.alerts import AlertKind
from bot.domain.status import PatientStatus
from bot.channels.port import Account
from bot.db.models import AuditLog, Invitation, Patient
from bot.domain.tokens import InvitationStatus, invitation_status, looks_like_token, throttle_allows
from bot.domain.enrolment import EnrolStep, StepRefused, next_step
from bot.services import dialogs, invitations, patients
from bot.services.alerts import raise_alert
from bot.services.audit import audit
from bot.services.queries import helper_by_account, patient_by_subject, patient_by_account
from bot.services.runtime import Runtime
from bot.services.refusal import Refused

REJECTED = "enrol.token_rejected"


class EnrolmentRefused(Refused):
    """code: invalid | throttled | already_enrolled | is_helper | is_staff (the account has another role). The
    patient sees one message for all invalid cases, so the reason is never revealed to them (it is
    in the audit log)."""


@dataclass(frozen=True)
class PendingEnrolment:
    site_id: str
    subject_id: str | None
    purpose: str = "enrol"
    token_hash: str | None = None


async def _recent_failures(session, *, account: Account, since) -> list:
    statement = select(AuditLog.at).where(
        AuditLog.action == REJECTED, AuditLog.actor_id == account.key, AuditLog.at >= since
    )
    return list((await session.exec(statement)).all())


async def check_token(rt: Runtime, *, account: Account, token: str | None = None, token_hash: str | None = None,
                      update_id: int | None = None) -> PendingEnrolment:
    """The invitation behind a token (as typed or linked), or behind its hash (as kept in the
    enrolment dialog, which never stores the token itself)."""
    now = rt.now()
    async with rt.session() as session:
        failures = await _recent_failures(session, account=account, since=now - timedelta(hours=1))
        if not throttle_allows(failures, now=now):
            audit(session, at=now, actor_kind="user", actor_id=account, action="enrol.throttled", update_id=update_id)
            await session.commit()
            raise EnrolmentRefused("throttled")
        if token_hash is not None:
            token_ok = True
            invitation = await invitations.find_by_hash(session, token_hash=token_hash)
        else:
            token_ok = looks_like_token(token)
            invitation = await invitations.find(session, token=token) if token_ok else None
        if invitation and invitation.purpose == "enrol" and await patient_by_account(session, account=account):
            raise EnrolmentRefused("already_enrolled")
        if invitation and invitation.purpose != "helper":
            # One account, one role: a patient's messages could not be told apart from a helper's
            # or a staff member's (a patient or staff member joining as a helper is refused alike).
            role = "is_staff" if rt.staff(account) is not None else \
                "is_helper" if await helper_by_account(session, account=account) else None
            if role:
                audit(session, at=now, actor_kind="user", actor_id=account, action="enrol.refused",
                      entity="invitation", entity_id=invitation.id, reason=role, update_id=update_id)
                await session.commit()
                raise EnrolmentRefused(role)
        reason = "format" if not token_ok else "unknown" if invitation is None else None
        if invitation is not None:
            status = invitation_status(expires_at=invitation.expires_at, used_at=invitation.used_at,
                                       revoked_at=invitation.revoked_at, now=now)
            if status is not InvitationStatus.VALID:
                reason = status.value
            elif invitation.purpose == "enrol" and invitation.subject_id and \
                    await patient_by_subject(session, subject_id=invitation.subject_id):
                reason = "subject_already_bound"  # moving a subject to a new account needs /rebind
        if reason:
            audit(session, at=now, actor_kind="user", actor_id=account, action=REJECTED,
                  entity="invitation", entity_id=invitation.id if invitation else None, reason=reason, update_id=update_id)
            await session.commit()
            raise EnrolmentRefused("invalid")
        return PendingEnrolment(site_id=invitation.site_id, subject_id=invitation.subject_id,
                                purpose=invitation.purpose, token_hash=invitation.token_hash)


async def _next_subject_id(session, site_id: str) -> str:
    count = (await session.exec(select(func.count()).select_from(Patient).where(Patient.site_id == site_id))).one()
    return f"{site_id}-T{count + 1:03d}"


async def complete(
    rt: Runtime,
    *,
    account: Account,
    address: str,
    token: str | None = None,
    token_hash: str | None = None,
    locale: str,
    reminder_time: str,
    update_id: int | None = None,
) -> Patient:
    """Spend the token and bind this account (reached at `address`). Re-checks everything: the flow may have
    taken minutes and the token may have been used or revoked meanwhile."""
    pending = await check_token(rt, account=account, token=token, token_hash=token_hash,
                                update_id=update_id)
    now = rt.now()
    settings = rt.settings
    async with rt.session() as session:
        invitation = await invitations.find_by_hash(session, token_hash=pending.token_hash)
        spent = await session.exec(
            update(Invitation)
            .where(Invitation.id == invitation.id, Invitation.used_at.is_(None), Invitation.revoked_at.is_(None))
            .values(used_at=now, used_by_account=account.key)
        )
        if spent.rowcount != 1:
            raise EnrolmentRefused("invalid")
        site = settings.site(invitation.site_id)
        patient = await patient_by_subject(session, subject_id=invitation.subject_id) if invitation.subject_id else None
        if patient is not None and invitation.purpose == "rebind":
            before = {"account": patient.account_key}
            patient.channel, patient.account, patient.address = account.channel, account.id, address
            patient.unreachable = False
            patient.locale, patient.reminder_time = locale, reminder_time
            action = "patient.rebound"
        elif patient is not None:
            raise EnrolmentRefused("invalid")
        else:
            before = None
            patient = Patient(
                subject_id=invitation.subject_id or await _next_subject_id(session, site.id), site_id=site.id,
                channel=account.channel, account=account.id, address=address, locale=locale, timezone=site.timezone,
                reminder_time=reminder_time, status=PatientStatus.ACTIVE, created_at=now, enrolled_at=now,
            )
            action = "patient.enrolled"
        patient.consent_version, patient.consented_at = settings.trial.consent_version, now
        session.add(patient)
        await session.flush()
        moved_from = None
        if action == "patient.rebound":  # the new phone's time applies to the running course too
            moved_from = await patients.move_untouched_days(session, patient=patient, now=now)
        audit(session, at=now, actor_kind="patient", actor_id=patient.subject_id, action="invitation.used",
              entity="invitation", entity_id=invitation.id, update_id=update_id)
        audit(session, at=now, actor_kind="patient", actor_id=patient.subject_id, action="consent.given",
              entity="patient", entity_id=patient.subject_id, after={"consent_version": patient.consent_version},
              update_id=update_id)
        audit(session, at=now, actor_kind="patient", actor_id=patient.subject_id, action=action, entity="patient",
              entity_id=patient.subject_id, before=before,
              after={"site_id": site.id, "account": account.key, "locale": locale,
                     "reminder_time": reminder_time, "days_moved_from": moved_from.isoformat() if moved_from else None},
              update_id=update_id)
        await raise_alert(session, settings=settings, now=now, site_id=site.id, kind=AlertKind.NEW_ENROLMENT, patient=patient,
                          dedupe_key=f"enrolled:{patient.subject_id}:{invitation.id}", update_id=update_id)
        await session.commit()
    rt.wake()
    return patient


async def record_declined(rt: Runtime, *, account: Account, update_id: int | None = None) -> None:
    async with rt.session() as session:
        audit(session, at=rt.now(), actor_kind="user", actor_id=account, action="consent.declined",
              update_id=update_id)
        await session.commit()


# --- the enrolment dialog, kept in the database (bot.services.dialogs) -------------------------

DIALOG = "enrol"
DIALOG_TTL = timedelta(hours=24)


@dataclass(frozen=True)
class DialogStep:
    """The dialog after one accepted input. `patient` is set once enrolment completed."""

    step: EnrolStep
    state: dict
    patient: Patient | None = None


async def pending_dialog(rt: Runtime, *, account: Account) -> dict | None:
    async with rt.session() as session:
        return await dialogs.get(session, channel_user_id=account.key, kind=DIALOG,
                                 now=rt.now())


async def start_dialog(rt: Runtime, *, account: Account, token: str, locale: str,
                       update_id: int | None = None) -> DialogStep:
    """A valid invitation starts (or restarts) the dialog at the language step."""
    pending = await check_token(rt, account=account, token=token, update_id=update_id)
    state = {"step": EnrolStep.LANGUAGE.value, "token_hash": pending.token_hash, "site": pending.site_id,
             "purpose": pending.purpose, "locale": locale}
    async with rt.session() as session:
        await dialogs.put(session, channel_user_id=account.key, kind=DIALOG,
                          payload=state, now=rt.now(), ttl=DIALOG_TTL)
        await session.commit()
    return DialogStep(EnrolStep.LANGUAGE, state)


async def advance_dialog(rt: Runtime, *, account: Account, address: str, received: str, value: str,
                         update_id: int | None = None) -> DialogStep:
    """Apply one input to the dialog, only if it belongs to the current step. Anything else
    (no dialog, out of order, malformed) raises StepRefused, is audited and changes nothing."""
    now = rt.now()
    who = account.key
    async with rt.session() as session:
        state = await dialogs.get(session, channel_user_id=who, kind=DIALOG, now=now)
        try:
            step = next_step(state.get("step") if state else None, received, value)
        except StepRefused as refused:
            audit(session, at=now, actor_kind="user", actor_id=account, action="enrol.step_refused",
                  before={"step": state.get("step") if state else None}, after={"input": f"{received}:{value}"[:64]},
                  reason=refused.code, update_id=update_id)
            await session.commit()
            raise
        state = dict(state)
        if step is EnrolStep.CONSENT:
            state["locale"] = value
        elif step is EnrolStep.LANGUAGE:  # back from the summary: the consent is asked again
            state.pop("consent_version", None)
        elif step is EnrolStep.TIME and received == "consent":
            state["consent_version"] = rt.settings.trial.consent_version  # the version the patient was shown
        elif step is EnrolStep.CONFIRM:
            state["time"] = value
        if step is EnrolStep.DECLINED:
            await dialogs.clear(session, channel_user_id=who, kind=DIALOG)
            audit(session, at=now, actor_kind="user", actor_id=account, action="consent.declined",
                  after={"consent_version": rt.settings.trial.consent_version}, update_id=update_id)
            await session.commit()
            return DialogStep(step, state)
        if step is not EnrolStep.DONE:
            state["step"] = step.value
            await dialogs.put(session, channel_user_id=who, kind=DIALOG, payload=state, now=now, ttl=DIALOG_TTL)
            await session.commit()
            return DialogStep(step, state)
        await dialogs.clear(session, channel_user_id=who, kind=DIALOG)
        await session.commit()
    if state.get("consent_version") != rt.settings.trial.consent_version:
        raise StepRefused("expired", "the consent notice changed since the patient saw it")
    patient = await complete(rt, account=account, address=address, token_hash=state["token_hash"],
                             locale=state["locale"], reminder_time=state["time"], update_id=update_id)
    return DialogStep(step, state, patient)
