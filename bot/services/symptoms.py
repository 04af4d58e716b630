"""Symptom reports: saved before they are acknowledged; the alert is raised in the same step."""

from __future__ import annotations

from dataclasses import dataclass

from bot.db.models import SymptomReport
from bot.domain.triage import TriageLevel, triage
from bot.services.alerts import raise_alert
from bot.services.audit import audit
from bot.services.queries import patient_by_telegram
from bot.services.runtime import Runtime


class ReportNotSaved(Exception):
    """The report did not reach the database: the patient must be told so."""


@dataclass(frozen=True)
class ReportResult:
    report_id: int
    level: TriageLevel


def levels(settings) -> dict[str, TriageLevel]:
    return {s.code: TriageLevel[s.level.upper()] for s in settings.triage.symptoms}


def classify(settings, codes: list[str]) -> TriageLevel:
    """Pure triage, usable before saving so emergency advice never waits on the database."""
    return triage(codes, levels(settings))


async def report(rt: Runtime, *, telegram_user_id: int, codes: list[str], note: str | None = None,
                 update_id: int | None = None) -> ReportResult:
    level = classify(rt.settings, codes)
    now = rt.now()
    try:
        async with rt.session() as session:
            patient = await patient_by_telegram(session, telegram_user_id=telegram_user_id)
            if patient is None:
                raise ReportNotSaved("not enrolled")
            row = SymptomReport(patient_id=patient.id, reported_at=now, symptoms=list(codes), level=level.key,
                                note=note, update_id=update_id)
            session.add(row)
            await session.flush()
            audit(session, at=now, actor_kind="patient", actor_id=patient.subject_id, action="symptom.reported",
                  entity="symptom_report", entity_id=row.id, after={"symptoms": list(codes), "level": level.key},
                  update_id=update_id)
            if level is not TriageLevel.LOG:
                kind = "emergency_symptom" if level is TriageLevel.EMERGENCY else "same_day_symptom"
                await raise_alert(session, settings=rt.settings, now=now, site_id=patient.site_id, kind=kind,
                                  patient=patient, details={"symptoms": list(codes), "report_id": row.id},
                                  dedupe_key=f"symptom:{row.id}", update_id=update_id)
            await session.commit()
            report_id = row.id
    except ReportNotSaved:
        raise
    except Exception as error:  # any database failure: never a false "received"
        raise ReportNotSaved(type(error).__name__) from error
    rt.wake()
    return ReportResult(report_id=report_id, level=level)


async def add_note(rt: Runtime, *, telegram_user_id: int, report_id: int, note: str,
                   update_id: int | None = None) -> bool:
    """Attach the patient's optional free-text note to their report, once. The note itself is
    kept out of the audit row and the logs (it may hold anything); only its length is recorded."""
    note = note.strip()[:2000]
    now = rt.now()
    async with rt.session() as session:
        patient = await patient_by_telegram(session, telegram_user_id=telegram_user_id)
        report_row = await session.get(SymptomReport, report_id)
        if not note or patient is None or report_row is None or report_row.patient_id != patient.id \
                or report_row.note is not None:
            return False
        report_row.note = note
        session.add(report_row)
        audit(session, at=now, actor_kind="patient", actor_id=patient.subject_id, action="symptom.note_added",
              entity="symptom_report", entity_id=report_id, after={"note_length": len(note)}, update_id=update_id)
        await session.commit()
    return True
