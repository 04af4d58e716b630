"""Trial data for data managers: one table per file, rows straight from the database.

Column names and meanings are documented in docs/exports.md; keep the two in step (a test
compares them). No column can differ by study arm: the database has no arm. A site export holds
that site's patients and every audit row that concerns them, its coordinators, invitations,
courses, days, reports and alerts; an all-sites export holds every audit row.

No account id or chat address leaves the database: staff appear by their configured label, patients by
subject id, anyone else by a keyed hash (bot.services.staff); ids inside audit JSON are replaced
the same way. A codebook lists every code the files use; the manifest is written with the files
(bot.reports.csv_files).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import col, select

from bot.channels.port import Account, ChannelName
from bot.db import legacy
from bot.db.models import (Alert, AlertMessage, AuditLog, ConmedReport, Course, DoseDay, DoseEvent, Helper,
                           Invitation, Patient, PatientMessage, SymptomReport, TabletCount, Visit)
from bot.services.accountability import ran_out_days, taken_days
from bot.services.visits import unconfirmed
from bot.domain.tokens import invitation_status
from bot.services.audit import audit
from bot.services.codebook import codebook_rows
from bot.services.coord_access import Actor
from bot.services.runtime import Runtime
from bot.services.staff import keyed_hash, pseudonym_key, staff_label

COLUMNS: dict[str, list[str]] = {
    "patients": ["subject_id", "site_id", "status", "pause_origin", "pause_reason", "paused_at_utc", "unreachable",
                 "locale", "timezone", "reminder_time",
                 "consent_version", "consented_at_utc", "consented_at_local", "enrolled_at_utc", "enrolled_at_local",
                 "withdrawn_at_utc", "withdrawn_at_local", "account_bound"],
    "courses": ["course_id", "subject_id", "site_id", "cycle", "chemo_end", "first_day", "last_day", "status",
                "source", "confirmed", "created_at_utc", "created_at_local", "created_by"],
    "dose_days": ["dose_day_id", "course_id", "subject_id", "site_id", "cycle", "day", "local_date", "timezone",
                  "course_status", "state", "out_of_window", "late", "source", "missed_reason", "snoozes",
                  "scheduled_at_utc", "scheduled_at_local", "answered_at_utc", "answered_at_local",
                  "recorded_at_utc", "recorded_at_local", "closes_at_utc", "late_until_utc"],
    "dose_events": ["event_id", "dose_day_id", "subject_id", "cycle", "day", "at_utc", "at_local", "kind",
                    "from_state", "to_state", "late", "actor", "reason"],
    "symptom_reports": ["report_id", "subject_id", "site_id", "reported_at_utc", "reported_at_local", "level",
                        "symptoms", "note", "reported_by", "update_id"],
    "alerts": ["alert_id", "site_id", "subject_id", "kind", "level", "created_at_utc", "created_at_local",
               "acknowledged_at_utc", "acknowledged_at_local", "acknowledged_by", "minutes_to_acknowledge",
               "escalate_at_utc", "escalated_at_utc", "repeats", "copies_sent", "details"],
    "patient_messages": ["message_id", "subject_id", "site_id", "at_utc", "at_local", "direction", "kind", "level",
                         "matched", "text", "author", "alert_id"],
    "concomitant_medications": ["report_id", "subject_id", "site_id", "course_id", "cycle", "check_point",
                                "answered_at_utc", "answered_at_local", "answer", "category", "reported_by",
                                "alert_id", "update_id"],
    "accountability": ["course_id", "subject_id", "site_id", "cycle", "dispensed", "reported_left", "expected_left",
                       "difference", "expected_left_at_report", "ran_out_days", "answered_at_utc",
                       "answered_at_local", "source", "alert_id"],
    "visits": ["visit_id", "subject_id", "site_id", "kind", "at_utc", "at_local", "status", "unconfirmed",
               "patient_answer", "answered_at_utc", "created_by", "created_at_utc", "updated_at_utc", "reason",
               "attended_at_utc", "attended_by"],
    "helpers": ["helper_id", "subject_id", "site_id", "status", "joined_at_utc", "joined_at_local", "removed_at_utc",
                "removed_by", "removal_reason"],
    "invitations": ["invitation_id", "site_id", "subject_id", "purpose", "status", "created_by", "created_at_utc",
                    "expires_at_utc", "used_at_utc", "revoked_at_utc", "revoked_by"],
    "audit_log": ["audit_id", "at_utc", "actor_kind", "actor_id", "action", "entity", "entity_id", "before", "after",
                  "reason", "update_id"],
}


# The tables of the optional checks around dosing (issue 14), written by every export.
COMPANION_TABLES = [table for table in ("concomitant_medications", "accountability", "visits", "helpers")
                    if table in COLUMNS]

CODEBOOK_COLUMNS = ["field", "code", "label_en", "label_zh", "level", "meaning"]


@dataclass
class Export:
    site_id: str | None
    created_at: datetime
    tables: dict[str, list[dict]] = field(default_factory=dict)
    exported_by: str = ""
    facts: dict = field(default_factory=dict)  # trial, protocol and consent versions for the manifest
    codebook: list[dict] = field(default_factory=list)


class Names:
    """Account keys, addresses and the bare ids older rows carry (bot.db.legacy) → the names an
    export may show (staff label, subject id, keyed hash)."""

    def __init__(self, settings, key: bytes, people: dict[str, str]) -> None:
        self.settings, self.key, self.people = settings, key, people

    @staticmethod
    def account_key(value) -> str:
        text = str(value).strip()
        return legacy.account_key(text) if legacy.is_bare_id(text) else text

    def person(self, value) -> str:
        label = staff_label(self.settings, value)
        if label is not None:
            return label
        name = self.account_key(value)
        # Hashed as older exports did (the bare id), so a pseudonym survives migration 0010.
        return self.people.get(name) or keyed_hash(self.key, legacy.bare_id(name) or name)

    @staticmethod
    def names_a_person(value) -> bool:
        """An account key ("<channel>:<id>") or the bare id of an older row."""
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            return False
        text = str(value).strip()
        channel, colon, account_id = text.partition(":")
        return legacy.is_bare_id(text) or bool(colon and account_id and channel in set(ChannelName))

    def actor(self, value: str) -> str:
        """'coordinator:<account key>' → 'coordinator:NJ nurse 1'; other actors are already names."""
        kind, _, who = (value or "").partition(":")
        if kind in PERSON_ACTORS and self.names_a_person(who):
            return f"{kind}:{self.person(who)}"
        return value or ""

    def audit_actor(self, row: AuditLog) -> str:
        if row.actor_kind in PERSON_ACTORS and self.names_a_person(row.actor_id):
            return self.person(row.actor_id)
        return row.actor_id

    def scrub(self, value):
        """JSON with every account id replaced: under a key that names a person, and any value
        that is a known person's id or any account key."""
        if isinstance(value, dict):
            return {k: (self.person(v) if k in PERSON_KEYS and v is not None else self.scrub(v))
                    for k, v in value.items()}
        if isinstance(value, list):
            return [self.scrub(v) for v in value]
        if isinstance(value, int) and not isinstance(value, bool) and self.known(value):
            return self.person(value)
        if isinstance(value, str) and not legacy.is_bare_id(value) and self.names_a_person(value):
            return self.person(value)
        return value

    def known(self, value: int) -> bool:
        return self.account_key(value) in self.people or staff_label(self.settings, value) is not None


# Actors named by an account (staff, escalation contacts, anyone unknown); patients and helpers
# act under their subject and helper ids.
PERSON_ACTORS = frozenset({"coordinator", "escalation", "user"})
PERSON_KEYS = frozenset({"account", "used_by_account", "address", "to", "acknowledged_by", "user_id"}) \
    | legacy.PERSON_KEYS


def utc(value: datetime | None) -> str:
    return value.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ") if value else ""


def local(value: datetime | None, tz: str) -> str:
    return value.astimezone(ZoneInfo(tz)).isoformat(timespec="seconds") if value else ""


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True) if value is not None else ""


async def _all(session, statement):
    return list((await session.exec(statement)).all())


async def collect(rt: Runtime, actor: Actor, *, site_id: str | None = None, update_id: int | None = None) -> Export:
    """Everything the actor may see (one site, or all sites for an admin or operator without --site).
    The export itself is audited, after the audit rows it contains were read."""
    now = rt.now()
    sites = [s.id for s in rt.settings.sites if actor.may(s.id) and (site_id is None or s.id == site_id)]
    site_tz = {s.id: s.timezone for s in rt.settings.sites}
    export = Export(site_id=site_id, created_at=now)
    async with rt.session() as session:
        key = await pseudonym_key(session, now=now)
        bound: dict[str, str] = {}
        for p in await _all(session, select(Patient)):
            if p.account_key is not None:
                bound[p.account_key] = p.subject_id
            if p.address is not None:  # a private chat's address is its person's id
                bound[Account(p.channel, p.address).key] = p.subject_id
        for used_by, subject in (await session.exec(select(Invitation.used_by_account, Invitation.subject_id)
                                                    .where(col(Invitation.used_by_account).is_not(None)))).all():
            bound.setdefault(used_by, subject or keyed_hash(key, used_by))  # earlier phones of a rebound subject
        names = Names(rt.settings, key, bound)
        export.exported_by = names.person(actor.id) if actor.kind == "coordinator" else f"{actor.kind}:{actor.id}"
        export.facts = {"trial": rt.settings.trial.name, "protocol_id": rt.settings.trial.protocol_id,
                        "consent_version": rt.settings.trial.consent_version,
                        "course_days": rt.settings.trial.course_days}
        export.codebook = codebook_rows(rt.settings)
        patients = await _all(session, select(Patient).where(col(Patient.site_id).in_(sites))
                              .order_by(col(Patient.subject_id)))
        by_id = {p.id: p for p in patients}
        ids = list(by_id)
        courses = await _all(session, select(Course).where(col(Course.patient_id).in_(ids))
                             .order_by(col(Course.patient_id), col(Course.cycle)))
        doses = await _all(session, select(DoseDay).where(col(DoseDay.patient_id).in_(ids))
                           .order_by(col(DoseDay.patient_id), col(DoseDay.cycle), col(DoseDay.day)))
        dose_ids = [d.id for d in doses]
        events = await _all(session, select(DoseEvent).where(col(DoseEvent.dose_day_id).in_(dose_ids))
                            .order_by(col(DoseEvent.id))) if dose_ids else []
        reports = await _all(session, select(SymptomReport).where(col(SymptomReport.patient_id).in_(ids))
                             .order_by(col(SymptomReport.id)))
        alerts = await _all(session, select(Alert).where(col(Alert.site_id).in_(sites)).order_by(col(Alert.id)))
        messages = await _all(session, select(PatientMessage).where(col(PatientMessage.patient_id).in_(ids))
                              .order_by(col(PatientMessage.id)))
        conmeds = await _all(session, select(ConmedReport).where(col(ConmedReport.patient_id).in_(ids))
                             .order_by(col(ConmedReport.id)))
        visit_rows = await _all(session, select(Visit).where(col(Visit.patient_id).in_(ids)).order_by(col(Visit.id)))
        helper_rows = await _all(session, select(Helper).where(col(Helper.patient_id).in_(ids)).order_by(col(Helper.id)))
        counts = await _all(session, select(TabletCount).where(col(TabletCount.patient_id).in_(ids))
                            .order_by(col(TabletCount.id)))
        copies = await _all(session, select(AlertMessage.alert_id).where(
            col(AlertMessage.alert_id).in_([a.id for a in alerts]))) if alerts else []
        invitations = await _all(session, select(Invitation).where(col(Invitation.site_id).in_(sites))
                                 .order_by(col(Invitation.id)))
        audit_rows = await _all(session, select(AuditLog).order_by(col(AuditLog.id)))
        everything = len(sites) == len(rt.settings.sites)
        audit_rows = audit_rows if everything else _site_audit(rt, sites, audit_rows, patients, courses, doses,
                                                              reports, alerts, invitations, conmeds, counts,
                                                              visit_rows, helper_rows)
        withdrawn = {r.entity_id: r.at for r in audit_rows if r.action == "patient.withdrawn"}
        course_status = {c.id: c.status for c in courses}
        recorded = _recorded_at(doses, events)
        dose_by_id = {d.id: d for d in doses}
        copy_count: dict[int, int] = defaultdict(int)
        for alert_id in copies:
            copy_count[alert_id] += 1

        export.tables["patients"] = [{
            "subject_id": p.subject_id, "site_id": p.site_id, "status": p.status,
            "pause_origin": p.pause_origin or "", "pause_reason": p.pause_reason or "",
            "paused_at_utc": utc(p.paused_at), "unreachable": _flag(p.unreachable),
            "locale": p.locale, "timezone": p.timezone, "reminder_time": p.reminder_time,
            "consent_version": p.consent_version or "", "consented_at_utc": utc(p.consented_at),
            "consented_at_local": local(p.consented_at, p.timezone), "enrolled_at_utc": utc(p.enrolled_at),
            "enrolled_at_local": local(p.enrolled_at, p.timezone),
            "withdrawn_at_utc": utc(withdrawn.get(p.subject_id)),
            "withdrawn_at_local": local(withdrawn.get(p.subject_id), p.timezone),
            "account_bound": _flag(p.account is not None)} for p in patients]
        export.tables["courses"] = [{
            "course_id": c.id, "subject_id": by_id[c.patient_id].subject_id, "site_id": by_id[c.patient_id].site_id,
            "cycle": c.cycle, "chemo_end": c.chemo_end.isoformat(), "first_day": c.first_day.isoformat(),
            "last_day": c.last_day.isoformat(), "status": c.status, "source": c.source,
            "confirmed": _flag(c.confirmed), "created_at_utc": utc(c.created_at),
            "created_at_local": local(c.created_at, by_id[c.patient_id].timezone), "created_by": names.actor(c.created_by)}
            for c in courses]
        export.tables["dose_days"] = [_dose_row(d, by_id[d.patient_id], course_status, recorded) for d in doses]
        export.tables["dose_events"] = [{
            "event_id": e.id, "dose_day_id": e.dose_day_id,
            "subject_id": by_id[dose_by_id[e.dose_day_id].patient_id].subject_id,
            "cycle": dose_by_id[e.dose_day_id].cycle, "day": dose_by_id[e.dose_day_id].day, "at_utc": utc(e.at),
            "at_local": local(e.at, by_id[dose_by_id[e.dose_day_id].patient_id].timezone), "kind": e.kind,
            "from_state": e.from_state, "to_state": e.to_state, "late": _flag(e.late), "actor": names.actor(e.actor),
            "reason": e.reason or ""} for e in events]
        export.tables["symptom_reports"] = [{
            "report_id": r.id, "subject_id": by_id[r.patient_id].subject_id, "site_id": by_id[r.patient_id].site_id,
            "reported_at_utc": utc(r.reported_at),
            "reported_at_local": local(r.reported_at, by_id[r.patient_id].timezone),
            "level": r.level, "symptoms": ";".join(r.symptoms), "note": r.note or "",
            "reported_by": r.helper_id or "patient",
            "update_id": r.update_id if r.update_id is not None else ""} for r in reports]
        export.tables["alerts"] = [_alert_row(a, names, site_tz[a.site_id], copy_count[a.id]) for a in alerts]
        export.tables["patient_messages"] = [{
            "message_id": m.id, "subject_id": by_id[m.patient_id].subject_id, "site_id": by_id[m.patient_id].site_id,
            "at_utc": utc(m.at), "at_local": local(m.at, by_id[m.patient_id].timezone), "direction": m.direction,
            "kind": m.kind, "level": m.level, "matched": ";".join(m.matched), "text": m.text or "",
            "author": m.author, "alert_id": m.alert_id or ""} for m in messages]
        export.tables["concomitant_medications"] = [{
            "report_id": r.id, "subject_id": by_id[r.patient_id].subject_id, "site_id": by_id[r.patient_id].site_id,
            "course_id": r.course_id, "cycle": r.cycle, "check_point": r.check_point,
            "answered_at_utc": utc(r.answered_at), "answered_at_local": local(r.answered_at, by_id[r.patient_id].timezone),
            "answer": r.answer, "category": r.category or "", "reported_by": r.reported_by,
            "alert_id": r.alert_id or "", "update_id": r.update_id if r.update_id is not None else ""}
            for r in conmeds]
        export.tables["accountability"] = _accountability_rows(counts, by_id, doses)
        export.tables["helpers"] = [{
            "helper_id": x.helper_id, "subject_id": by_id[x.patient_id].subject_id,
            "site_id": by_id[x.patient_id].site_id, "status": x.status, "joined_at_utc": utc(x.joined_at),
            "joined_at_local": local(x.joined_at, by_id[x.patient_id].timezone), "removed_at_utc": utc(x.removed_at),
            "removed_by": names.actor(x.removed_by or ""),
            "removal_reason": x.removal_reason or ""} for x in helper_rows]
        export.tables["visits"] = [{
            "visit_id": v.id, "subject_id": by_id[v.patient_id].subject_id, "site_id": v.site_id, "kind": v.kind,
            "at_utc": utc(v.at), "at_local": local(v.at, by_id[v.patient_id].timezone), "status": v.status,
            "unconfirmed": _flag(unconfirmed(v, ZoneInfo(by_id[v.patient_id].timezone), now)),
            "patient_answer": v.patient_answer or "", "answered_at_utc": utc(v.answered_at),
            "created_by": names.actor(v.created_by), "created_at_utc": utc(v.created_at),
            "updated_at_utc": utc(v.updated_at), "reason": v.reason or "", "attended_at_utc": utc(v.attended_at),
            "attended_by": names.actor(v.attended_by or "")} for v in visit_rows]
        export.tables["invitations"] = [{
            "invitation_id": i.id, "site_id": i.site_id, "subject_id": i.subject_id or "", "purpose": i.purpose,
            "status": invitation_status(expires_at=i.expires_at, used_at=i.used_at, revoked_at=i.revoked_at,
                                        now=now).value,
            "created_by": names.actor(i.created_by), "created_at_utc": utc(i.created_at),
            "expires_at_utc": utc(i.expires_at), "used_at_utc": utc(i.used_at), "revoked_at_utc": utc(i.revoked_at),
            "revoked_by": names.actor(i.revoked_by or "")}
            for i in invitations]
        export.tables["audit_log"] = [{
            "audit_id": r.id, "at_utc": utc(r.at), "actor_kind": r.actor_kind, "actor_id": names.audit_actor(r),
            "action": r.action, "entity": r.entity or "", "entity_id": r.entity_id or "",
            "before": _json(names.scrub(r.before)), "after": _json(names.scrub(r.after)), "reason": r.reason or "",
            "update_id": r.update_id if r.update_id is not None else ""}
            for r in audit_rows]
        audit(session, at=now, actor_kind=actor.kind, actor_id=actor.id, action="export.created", entity="site",
              entity_id=site_id or "all", after={"sites": sites, "rows": {k: len(v) for k, v in export.tables.items()}},
              update_id=update_id)
        await session.commit()
    return export


def _recorded_at(doses: list[DoseDay], events: list[DoseEvent]) -> dict[int, datetime]:
    """When each day's current state was written: the last event that moved it into that state."""
    recorded: dict[int, datetime] = {}
    state = {d.id: d.state for d in doses}
    for event in events:
        if event.to_state == state.get(event.dose_day_id) and event.from_state != event.to_state:
            recorded[event.dose_day_id] = event.at
    return recorded


def _dose_row(d: DoseDay, patient: Patient, course_status: dict, recorded: dict) -> dict:
    tz = patient.timezone
    return {
        "dose_day_id": d.id, "course_id": d.course_id, "subject_id": patient.subject_id, "site_id": patient.site_id,
        "cycle": d.cycle, "day": d.day, "local_date": d.local_date.isoformat(), "timezone": tz,
        "course_status": course_status.get(d.course_id, ""), "state": d.state,
        "out_of_window": _flag(d.out_of_window), "late": _flag(d.late),
        "source": d.source or "", "missed_reason": d.missed_reason or "", "snoozes": d.snoozes,
        "scheduled_at_utc": utc(d.due_at), "scheduled_at_local": local(d.due_at, tz),
        "answered_at_utc": utc(d.answered_at), "answered_at_local": local(d.answered_at, tz),
        "recorded_at_utc": utc(recorded.get(d.id)), "recorded_at_local": local(recorded.get(d.id), tz),
        "closes_at_utc": utc(d.closes_at), "late_until_utc": utc(d.late_until)}


def _alert_row(a: Alert, names: Names, tz: str, copies: int) -> dict:
    waited = (a.acknowledged_at - a.created_at).total_seconds() / 60 if a.acknowledged_at else None
    return {
        "alert_id": a.id, "site_id": a.site_id, "subject_id": (a.details or {}).get("subject_id") or "",
        "kind": a.kind, "level": a.level, "created_at_utc": utc(a.created_at),
        "created_at_local": local(a.created_at, tz),
        "acknowledged_at_utc": utc(a.acknowledged_at), "acknowledged_at_local": local(a.acknowledged_at, tz),
        "acknowledged_by": names.person(a.acknowledged_by) if a.acknowledged_by is not None else "",
        "minutes_to_acknowledge": f"{waited:.1f}" if waited is not None else "",
        "escalate_at_utc": utc(a.escalate_at), "escalated_at_utc": utc(a.escalated_at), "repeats": a.repeats,
        "copies_sent": copies, "details": _json(names.scrub(a.details))}


def _accountability_rows(counts: list[TabletCount], by_id: dict, doses: list[DoseDay]) -> list[dict]:
    """One row per answered tablet count; `expected_left` from the dose record as it is now."""
    by_course: dict[int, list[DoseDay]] = defaultdict(list)
    for d in doses:
        by_course[d.course_id].append(d)
    rows = []
    for c in counts:
        patient, course_doses = by_id[c.patient_id], by_course.get(c.course_id, [])
        expected = c.dispensed - taken_days(course_doses)
        rows.append({
            "course_id": c.course_id, "subject_id": patient.subject_id, "site_id": patient.site_id, "cycle": c.cycle,
            "dispensed": c.dispensed, "reported_left": c.reported_left, "expected_left": expected,
            "difference": c.reported_left - expected, "expected_left_at_report": c.expected_left,
            "ran_out_days": ";".join(str(d.day) for d in ran_out_days(course_doses)),
            "answered_at_utc": utc(c.answered_at), "answered_at_local": local(c.answered_at, patient.timezone),
            "source": c.source, "alert_id": c.alert_id or ""})
    return rows


def _site_audit(rt: Runtime, sites, rows, patients, courses, doses, reports, alerts, invitations,
                conmeds=(), counts=(), visit_rows=(), helper_rows=()) -> list[AuditLog]:
    subjects = {p.subject_id for p in patients}
    coordinators = {name for s in rt.settings.sites if s.id in sites for c in s.coordinators
                    for name in (c.account.key, legacy.bare_id(c.account.key)) if name}
    ids = {
        "patient": subjects, "course": {str(c.id) for c in courses}, "dose_day": {str(d.id) for d in doses},
        "symptom_report": {str(r.id) for r in reports}, "alert": {str(a.id) for a in alerts},
        "invitation": {str(i.id) for i in invitations}, "site": set(sites),
        "conmed_report": {str(r.id) for r in conmeds}, "tablet_count": {str(c.id) for c in counts},
        "visit": {str(v.id) for v in visit_rows}, "helper": {h.helper_id for h in helper_rows},
    }
    helpers = ids["helper"]

    def concerns(row: AuditLog) -> bool:
        if row.entity in ids and row.entity_id in ids[row.entity]:
            return True
        if (row.actor_kind == "patient" and row.actor_id in subjects) or \
                (row.actor_kind == "helper" and row.actor_id in helpers):
            return True
        if row.actor_kind == "coordinator" and row.actor_id in coordinators and row.entity is None:
            return True
        return isinstance(row.after, dict) and row.after.get("subject_id") in subjects

    return [row for row in rows if concerns(row)]


__all__ = ["CODEBOOK_COLUMNS", "COLUMNS", "Export", "collect", "local", "utc"]
