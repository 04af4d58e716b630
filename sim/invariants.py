"""The invariants a whole trial must satisfy, each a named, self-contained check.

Each check reads the database (a fresh engine: nothing cached by the bot), what the sandbox
saw the bot send (stamped with simulated time) and the run's captured logs, and returns an
`Outcome`: pass, FAIL with one line per violation (which patient, day or row, what was
expected), or skipped with the reason (a feature not on this branch yet).

To add a check: write `async def check_<name>(ctx) -> Outcome` and list it in CHECKS.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select

from bot.db.engine import make_engine, session_factory
from bot.db.models import (Alert, AlertMessage, AuditLog, Course, DoseDay, DoseEvent, Invitation, Outbox, Patient,
                           SymptomReport)
from bot.i18n import Translator
from bot.domain.alerts import AlertKind, is_notice
from bot.services.runtime import Runtime

# Final states of a dose day (`scheduled` is the only one that is not).
FINAL_STATES = frozenset({"taken", "missed", "not_reported", "held", "cancelled", "before_registration"})
NOT_LIVE_STATES = frozenset({"cancelled"})
DOSE_KINDS = ("reminder", "followup", "snooze")
UNSOLICITED_KINDS = ("reminder", "followup", "snooze", "late_question", "course_plan", "course_end")
EMERGENCY_WINDOW = timedelta(seconds=5)
MAX_LINES = 12  # violations listed per check (the count is always given)


@dataclass
class Outcome:
    name: str
    status: str  # pass | FAIL | skipped
    details: list[str] = field(default_factory=list)
    checked: int = 0  # how many things were checked (rows, messages, lines)
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.status != "FAIL"


@dataclass
class Context:
    config: Any
    settings: Any
    clock: Any
    seen: list  # sim.engine.Seen
    free_texts: list[str]
    log_lines: list[str]
    token: str
    sandbox: Any
    people: dict
    session: Any = None
    rt: Any = None


def _outcome(name: str, violations: list[str], checked: int, note: str = "") -> Outcome:
    details = violations[:MAX_LINES] + ([f"... and {len(violations) - MAX_LINES} more"]
                                        if len(violations) > MAX_LINES else [])
    return Outcome(name, "FAIL" if violations else "pass", details, checked, note)


async def _all(session, statement) -> list:
    return list((await session.exec(statement)).all())


async def _subjects(session) -> dict[int, Patient]:
    return {p.id: p for p in await _all(session, select(Patient))}


def _markers() -> tuple[str, ...]:
    texts = []
    for locale in ("en", "zh_Hans"):
        t = Translator(locale)
        texts += [t._("You may have received this already. Take only one dose today."),
                  t._("You may have received this message already.")]
    return tuple(texts)


# --- the checks ---------------------------------------------------------------------------------------------------
async def check_one_final_state_per_dose_day(ctx: Context) -> Outcome:
    """Every dose day of every active course ends in exactly one final state, and an active course
    of a patient still in the study has all its days."""
    session = ctx.session
    patients = await _subjects(session)
    courses = await _all(session, select(Course).where(Course.status == "active"))
    days = defaultdict(list)
    for dose in await _all(session, select(DoseDay)):
        days[dose.course_id].append(dose)
    total = ctx.settings.trial.course_days
    violations = []
    for course in courses:
        patient = patients[course.patient_id]
        rows = days.get(course.id, [])
        for dose in rows:
            if dose.state not in FINAL_STATES:
                violations.append(f"{patient.subject_id} cycle {course.cycle} day {dose.day} ({dose.local_date}): "
                                  f"state {dose.state!r} at the end, expected one of {sorted(FINAL_STATES)}")
        numbers = Counter(d.day for d in rows)
        missing = [n for n in range(1, total + 1) if numbers[n] == 0]
        if missing and patient.status != "withdrawn":
            violations.append(f"{patient.subject_id} cycle {course.cycle}: days {missing} missing from an active course")
    return _outcome("one_final_state_per_dose_day", violations, sum(len(v) for v in days.values()))


async def check_no_two_live_dose_days_on_one_date(ctx: Context) -> Outcome:
    """No patient ever has two live dose days (of active courses) on one local date."""
    session = ctx.session
    patients = await _subjects(session)
    rows = await _all(session, select(DoseDay, Course).join(Course, Course.id == DoseDay.course_id)
                      .where(Course.status == "active"))
    by_date = defaultdict(list)
    for dose, course in rows:
        if dose.state not in NOT_LIVE_STATES:
            by_date[(dose.patient_id, dose.local_date)].append(dose)
    violations = [f"{patients[p].subject_id} on {day}: {len(doses)} live dose days "
                  f"({', '.join(f'cycle {d.cycle} day {d.day} id {d.id} {d.state}' for d in doses)}), expected 1"
                  for (p, day), doses in sorted(by_date.items(), key=lambda kv: (kv[0][0], kv[0][1]))
                  if len(doses) > 1]
    return _outcome("no_two_live_dose_days_on_one_date", violations, len(by_date))


def _dose_messages(ctx: Context) -> dict[tuple[int, str], list]:
    """Messages the patients received about a dose day: prompts (with Remind me later) and
    next-morning questions, keyed by (dose day id, what)."""
    found = defaultdict(list)
    for seen in ctx.seen:
        ids = {d.split(":")[1] for d in seen.datas if d.startswith("d:") and d.count(":") == 2}
        actions = {d.split(":")[2] for d in seen.datas if d.startswith("d:") and d.count(":") == 2}
        if len(ids) != 1:
            continue
        what = "prompt" if "l" in actions else "question" if actions == {"t", "m"} else None
        if what:
            found[(int(ids.pop()), what)].append(seen)
    return found


async def check_no_reminder_delivered_twice_without_marker(ctx: Context) -> Outcome:
    """A dose prompt or next-morning question reaches a patient at most once per outbox row that
    sent it; any further copy (a row re-sent after a crash) starts with the re-sent marker."""
    session = ctx.session
    patients = await _subjects(session)
    rows = defaultdict(lambda: {"prompt": 0, "question": 0})
    for outbox in await _all(session, select(Outbox).where(col(Outbox.kind).in_([*DOSE_KINDS, "late_question"]),
                                                          Outbox.attempts > 0)):
        rows[outbox.dose_day_id]["question" if outbox.kind == "late_question" else "prompt"] += 1
    doses = {d.id: d for d in await _all(session, select(DoseDay))}
    markers = _markers()
    violations = []
    messages = _dose_messages(ctx)
    for (dose_id, what), seen in sorted(messages.items()):
        plain = [s for s in seen if not any(m in s.text for m in markers)]
        allowed = rows[dose_id][what]
        if len(plain) > allowed:
            dose = doses.get(dose_id)
            who = f"{patients[dose.patient_id].subject_id} cycle {dose.cycle} day {dose.day} ({dose.local_date})" \
                if dose else f"dose day {dose_id} (deleted)"
            sent = "; ".join(f"{s.at:%Y-%m-%d %H:%M:%S}Z msg {s.message_id} {s.text.splitlines()[0][:50]!r}" for s in plain)
            violations.append(f"{who}: {len(plain)} unmarked {what}s delivered but {allowed} outbox row(s) sent them; "
                              f"expected every extra copy to start with the re-sent marker [{sent}]")
    return _outcome("no_reminder_delivered_twice_without_marker", violations, sum(len(v) for v in messages.values()))


def _intervals(audits: list[AuditLog], start: str, end: str) -> dict[str, list[tuple[datetime, datetime | None]]]:
    spans: dict[str, list[tuple[datetime, datetime | None]]] = defaultdict(list)
    for row in audits:
        if row.action == start:
            spans[row.entity_id].append((row.at, None))
        elif row.action == end and spans[row.entity_id] and spans[row.entity_id][-1][1] is None:
            spans[row.entity_id][-1] = (spans[row.entity_id][-1][0], row.at)
    return spans


async def check_no_message_to_withdrawn_patient_or_held_day(ctx: Context) -> Outcome:
    """Nothing the bot sends on its own reaches a withdrawn patient; no dose message goes out while
    a patient is paused (by themselves or by a team hold), nor for a day after it was held."""
    session = ctx.session
    patients = await _subjects(session)
    audits = await _all(session, select(AuditLog).where(col(AuditLog.action).in_(
        ["patient.withdrawn", "patient.paused", "patient.resumed"])).order_by(col(AuditLog.id)))
    withdrawn = {r.entity_id: r.at for r in audits if r.action == "patient.withdrawn"}
    paused = _intervals(audits, "patient.paused", "patient.resumed")
    sent = await _all(session, select(Outbox).where(Outbox.state == "sent", col(Outbox.kind).in_(UNSOLICITED_KINDS),
                                                    col(Outbox.patient_id).is_not(None)))
    held = {e.dose_day_id: e.at for e in await _all(session, select(DoseEvent).where(DoseEvent.to_state == "held")
                                                    .order_by(col(DoseEvent.id)))}
    violations = []
    for row in sent:
        patient = patients[row.patient_id]
        at = row.finished_at
        gone = withdrawn.get(patient.subject_id)
        if gone is not None and at is not None and at > gone:
            violations.append(f"{patient.subject_id}: {row.kind} (outbox {row.id}) sent at {at:%Y-%m-%d %H:%M}Z after "
                              f"withdrawal at {gone:%Y-%m-%d %H:%M}Z; expected nothing")
        if row.kind in (*DOSE_KINDS, "late_question") and at is not None:
            for start, end in paused.get(patient.subject_id, []):
                if start < at and (end is None or at < end):
                    violations.append(f"{patient.subject_id}: {row.kind} (outbox {row.id}, dose day {row.dose_day_id}) "
                                      f"sent at {at:%Y-%m-%d %H:%M}Z while paused since {start:%Y-%m-%d %H:%M}Z")
            if row.dose_day_id in held and at > held[row.dose_day_id]:
                violations.append(f"{patient.subject_id}: {row.kind} for held dose day {row.dose_day_id} sent at "
                                  f"{at:%Y-%m-%d %H:%M}Z")
    chats = {int(p.address): p for p in patients.values() if p.address}
    for seen in ctx.seen:  # copies Telegram received that the database may not know about
        patient = chats.get(seen.chat_id)
        gone = withdrawn.get(patient.subject_id) if patient else None
        if gone is not None and seen.at > gone and any(d.startswith("d:") for d in seen.datas):
            violations.append(f"{patient.subject_id}: dose message {seen.message_id} delivered at "
                              f"{seen.at:%Y-%m-%d %H:%M}Z after withdrawal at {gone:%Y-%m-%d %H:%M}Z")
    return _outcome("no_message_to_withdrawn_patient_or_held_day", violations, len(sent))


async def check_emergency_advice_and_alert_within_5s(ctx: Context) -> Outcome:
    """Every saved emergency report: the 120 advice reached the patient, and an alert copy reached
    a person on the team (or the alert was escalated), within 5 s of simulated time."""
    session = ctx.session
    patients = await _subjects(session)
    reports = await _all(session, select(SymptomReport).where(SymptomReport.level == "emergency"))
    alerts = await _all(session, select(Alert).where(Alert.kind == AlertKind.EMERGENCY_SYMPTOM))
    by_report = {rid: a for a in alerts for rid in (a.details or {}).get("report_ids", [])}
    copies = defaultdict(list)
    for copy in await _all(session, select(AlertMessage)):
        copies[copy.alert_id].append(copy.sent_at)
    chats_of = defaultdict(set)
    for person in ctx.people.values():
        chats_of[person.plan.subject_id].update([person.user_id, *person.old_user_ids])
    advice_seen = defaultdict(list)
    for seen in ctx.seen:
        if "120" in seen.text and "🚨" in seen.text:
            advice_seen[seen.chat_id].append(seen.at)
    violations = []
    for report in reports:
        patient = patients[report.patient_id]
        start, end = report.reported_at, report.reported_at + EMERGENCY_WINDOW
        chats = chats_of.get(patient.subject_id, set()) | ({int(patient.address)} if patient.address else set())
        if not any(start <= at <= end for chat in chats for at in advice_seen.get(chat, [])):
            violations.append(f"{patient.subject_id} report {report.id} at {start:%Y-%m-%d %H:%M:%S}Z: no 120 advice "
                              f"delivered within 5 s")
        alert = by_report.get(report.id)
        if alert is None:
            violations.append(f"{patient.subject_id} report {report.id}: no alert carries this report")
            continue
        delivered = any(at <= end for at in copies.get(alert.id, []))
        escalated = alert.escalated_at is not None and alert.escalated_at <= end
        if not (delivered or escalated):
            first = min(copies.get(alert.id, []), default=None)
            violations.append(f"{patient.subject_id} report {report.id} at {start:%Y-%m-%d %H:%M:%S}Z: alert {alert.id} "
                              f"first reached a person at {first and first.strftime('%Y-%m-%d %H:%M:%S')}Z and was not "
                              f"escalated within 5 s")
    return _outcome("emergency_advice_and_alert_within_5s", violations, len(reports))


async def check_every_alert_acknowledged_or_escalated(ctx: Context) -> Outcome:
    """Every alert a person must act on was acknowledged or escalated (notices need neither)."""
    session = ctx.session
    patients = await _subjects(session)
    alerts = [a for a in await _all(session, select(Alert)) if not is_notice(a.kind)]
    violations = [f"alert {a.id} ({a.kind}, {a.level}, site {a.site_id}, "
                  f"{patients[a.patient_id].subject_id if a.patient_id else '-'}) raised {a.created_at:%Y-%m-%d %H:%M}Z: "
                  f"neither acknowledged nor escalated by the end"
                  for a in alerts if a.acknowledged_at is None and a.escalated_at is None]
    return _outcome("every_alert_acknowledged_or_escalated", violations, len(alerts))


async def check_audit_chain_verifies(ctx: Context) -> Outcome:
    """The audit trail's hash chain verifies from the first row to the last."""
    from bot.db.audit_chain import verify

    result = await verify(ctx.rt.engine)
    problems = [] if result.ok else [f"broken at audit row {result.broken_at}: {result.problem}"]
    return _outcome("audit_chain_verifies", problems, result.rows)


async def check_export_counts_match_database(ctx: Context) -> Outcome:
    from bot.services import exports
    from bot.services.coord_access import operator_actor

    session = ctx.session
    export = await exports.collect(ctx.rt, operator_actor())
    models = {"patients": Patient, "courses": Course, "dose_days": DoseDay, "dose_events": DoseEvent,
              "symptom_reports": SymptomReport, "alerts": Alert, "invitations": Invitation, "audit_log": AuditLog}
    violations = []
    for table, model in models.items():
        count = (await session.exec(select(func.count()).select_from(model))).one()
        if table == "audit_log":
            count -= 1  # the export audits itself after reading the audit rows
        if len(export.tables.get(table, [])) != count:
            violations.append(f"{table}: export has {len(export.tables.get(table, []))} rows, database {count}")
    return _outcome("export_counts_match_database", violations, len(models))


async def check_logs_hold_no_token_or_patient_text(ctx: Context) -> Outcome:
    violations = []
    for number, line in enumerate(ctx.log_lines, start=1):
        if ctx.token and ctx.token in line:
            violations.append(f"log line {number} contains the bot token: {line.replace(ctx.token, '<TOKEN>')[:160]!r}")
        for text in ctx.free_texts:
            tag = text[text.rfind("q"):].rstrip(")")
            if text in line or tag in line:
                violations.append(f"log line {number} contains a patient's own words ({tag}): {line[:160]!r}")
    return _outcome("logs_hold_no_token_or_patient_text", violations, len(ctx.log_lines),
                    f"{len(ctx.free_texts)} patient texts searched for")


CHECKS = [
    check_one_final_state_per_dose_day,
    check_no_two_live_dose_days_on_one_date,
    check_no_reminder_delivered_twice_without_marker,
    check_no_message_to_withdrawn_patient_or_held_day,
    check_emergency_advice_and_alert_within_5s,
    check_every_alert_acknowledged_or_escalated,
    check_audit_chain_verifies,
    check_export_counts_match_database,
    check_logs_hold_no_token_or_patient_text,
]


async def statistics(session) -> dict[str, int]:
    stats: dict[str, int] = {}
    stats["patients in the database"] = (await session.exec(select(func.count()).select_from(Patient))).one()
    for state, count in (await session.exec(select(DoseDay.state, func.count()).group_by(DoseDay.state))).all():
        stats[f"dose days {state}"] = count
    stats["dose days"] = sum(v for k, v in stats.items() if k.startswith("dose days "))
    stats["courses"] = (await session.exec(select(func.count()).select_from(Course))).one()
    for kind, state, count in (await session.exec(select(Outbox.kind, Outbox.state, func.count())
                                                  .group_by(Outbox.kind, Outbox.state))).all():
        stats[f"outbox {kind} {state}"] = count
    stats["outbox rows re-sent after a crash"] = (await session.exec(
        select(func.count()).select_from(Outbox).where(Outbox.resends > 0))).one()
    for level, count in (await session.exec(select(SymptomReport.level, func.count())
                                            .group_by(SymptomReport.level))).all():
        stats[f"symptom reports saved ({level})"] = count
    for level, count in (await session.exec(select(Alert.level, func.count()).group_by(Alert.level))).all():
        stats[f"alerts ({level})"] = count
    stats["alerts escalated"] = (await session.exec(select(func.count()).select_from(Alert)
                                                   .where(col(Alert.escalated_at).is_not(None)))).one()
    stats["audit rows"] = (await session.exec(select(func.count()).select_from(AuditLog))).one()
    return stats


async def check_all(ctx: Context, checks=None) -> tuple[list[Outcome], dict[str, int]]:
    engine = make_engine(ctx.settings.database.url)
    ctx.rt = Runtime(settings=ctx.settings, engine=engine, clock=ctx.clock)
    outcomes = []
    try:
        async with session_factory(engine)() as session:
            ctx.session = session
            for check in checks or CHECKS:
                name = check.__name__.removeprefix("check_")
                try:
                    outcomes.append(await check(ctx))
                except Exception as error:  # a check that cannot run is a failure, never a silent pass
                    outcomes.append(Outcome(name, "FAIL", [f"the check itself raised {error!r}"]))
            stats = await statistics(session)
    finally:
        await engine.dispose()
    return outcomes, stats
