"""Course, symptom and correction rules through the services alone (no Telegram)."""

from __future__ import annotations

from datetime import time, timedelta

import pytest
from sqlmodel import select

from bot.channels.port import Account
from bot.db.models import Alert, AuditLog, Course, SymptomReport
from bot.domain.dose import DoseState
from bot.services import courses, patients, symptoms
from bot.services.coord_access import operator_actor


async def _alerts(world, patient) -> list[Alert]:
    async with world.rt.session() as session:
        return list((await session.exec(select(Alert).where(Alert.patient_id == patient.id)
                                        .order_by(Alert.id))).all())


async def test_an_overlapping_course_is_refused_and_writes_nothing(world):
    patient = await world.enrol()
    first = await world.course(patient)
    with pytest.raises(courses.CourseRefused):
        await world.course(patient, chemo_end=first.chemo_end + timedelta(days=5))
    async with world.rt.session() as session:
        assert len((await session.exec(select(Course).where(Course.patient_id == patient.id))).all()) == 1
    assert len(await world.days(patient)) == 14
    assert (await world.audit_actions(action="course.registered")) == ["course.registered"]


async def test_a_patient_cannot_report_a_chemotherapy_end_older_than_yesterday(world):
    patient = await world.enrol()
    with pytest.raises(courses.CourseRefused) as refused:
        await courses.patient_reported_chemo_end(world.rt, patient=patient,
                                                 chemo_end=world.today(patient) - timedelta(days=3))
    assert refused.value.code == "stale"
    assert await world.days(patient) == []


async def test_repeated_emergency_reports_merge_into_one_open_alert_and_all_are_kept(world):
    patient = await world.enrol()
    one = await symptoms.report(world.rt, account=Account.parse(patient.account_key), codes=["vomit_blood"])
    world.clock.advance(minutes=3)
    two = await symptoms.report(world.rt, account=Account.parse(patient.account_key), codes=["black_stool"])
    same_day = await symptoms.report(world.rt, account=Account.parse(patient.account_key), codes=["urine_blood"])
    assert one.alert_id == two.alert_id != same_day.alert_id
    emergency = [a for a in await _alerts(world, patient) if a.level == "emergency"]
    assert len(emergency) == 1
    assert {"vomit_blood", "black_stool"} <= set(emergency[0].details["symptoms"])
    async with world.rt.session() as session:
        kept = (await session.exec(select(SymptomReport).where(SymptomReport.patient_id == patient.id))).all()
    assert len(kept) == 3


async def test_reports_beyond_the_hourly_limit_are_saved_but_quiet(world):
    patient = await world.enrol()
    limit = world.rt.settings.alerts.max_reports_per_hour
    results = []
    for _ in range(limit + 2):
        results.append(await symptoms.report(world.rt, account=Account.parse(patient.account_key),
                                             codes=["vomit_blood"]))
        world.clock.advance(minutes=1)
    assert [r.throttled for r in results] == [False] * limit + [True, True]
    assert all(r.advice_row_id is None for r in results[limit:])  # the handler still shows the advice
    async with world.rt.session() as session:
        assert len((await session.exec(select(SymptomReport).where(
            SymptomReport.patient_id == patient.id))).all()) == limit + 2


async def test_a_coordinator_correction_keeps_the_before_and_marks_the_source(world):
    patient = await world.enrol()
    await world.course(patient)
    first = await world.day(patient, 1)
    world.at_local(patient, first.local_date + timedelta(days=1), time(12, 0))
    await world.lifecycle()
    actor = operator_actor()
    with pytest.raises(patients.PatientActionRefused) as refused:
        await patients.correct_day(world.rt, actor, subject_id=patient.subject_id,
                                         local_date=first.local_date, new_state="exploded", reason="typo")
    assert refused.value.code == "bad_state"
    await patients.correct_day(world.rt, actor, subject_id=patient.subject_id, local_date=first.local_date,
                                     new_state="taken", reason="patient phoned: took it at 8")
    day = await world.day(patient, 1)
    assert (day.state, day.source) == (DoseState.TAKEN, "coordinator")
    async with world.rt.session() as session:
        row = (await session.exec(select(AuditLog).where(AuditLog.entity == "dose_day",
                                                         AuditLog.entity_id == str(first.id),
                                                         AuditLog.actor_kind == "operator"))).one()
    assert row.before["state"] == DoseState.NOT_REPORTED and row.after["state"] == DoseState.TAKEN
    assert row.reason == "patient phoned: took it at 8"
