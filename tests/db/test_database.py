from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel, select

from bot.db.engine import session_factory
from bot.db.migrate import current_revision, schema_differences
from bot.db.models import Course, DoseDay, Patient

UTC = timezone.utc


async def test_migrations_match_models(engine):
    assert await current_revision(engine) is not None
    assert await schema_differences(engine) == []


@pytest.mark.parametrize(
    "written",
    [
        datetime(2026, 12, 2, 0, 0, 0, 123456, tzinfo=UTC),
        datetime(2026, 12, 2, 8, 0, tzinfo=ZoneInfo("Asia/Shanghai")),
        datetime(2026, 3, 8, 3, 0, tzinfo=ZoneInfo("America/New_York")),
    ],
)
async def test_timestamp_round_trip_is_aware_and_equal(engine, written):
    sessions = session_factory(engine)
    async with sessions() as session:
        patient = Patient(subject_id="SH-001", site_id="SH", created_at=written, enrolled_at=written)
        session.add(patient)
        await session.commit()
    async with sessions() as session:
        row = (await session.exec(select(Patient))).one()
    assert row.created_at == written
    assert row.created_at.tzinfo is not None and row.created_at.utcoffset() == timedelta(0)
    assert row.enrolled_at == written


async def test_naive_timestamp_is_refused(engine):
    async with session_factory(engine)() as session:
        session.add(Patient(subject_id="SH-002", site_id="SH", created_at=datetime(2026, 1, 1)))
        with pytest.raises(Exception, match="naive datetime"):
            await session.commit()


async def test_dose_day_unique_per_patient_cycle_day(engine):
    now = datetime(2026, 12, 1, tzinfo=UTC)
    async with session_factory(engine)() as session:
        patient = Patient(subject_id="SH-003", site_id="SH", created_at=now)
        session.add(patient)
        await session.flush()
        course = Course(patient_id=patient.id, cycle=1, chemo_end=date(2026, 12, 1), first_day=date(2026, 12, 2),
                        last_day=date(2026, 12, 15), created_at=now, created_by="test")
        session.add(course)
        await session.flush()
        for _ in range(2):
            session.add(DoseDay(patient_id=patient.id, course_id=course.id, cycle=1, day=1, local_date=date(2026, 12, 2),
                                due_at=now, closes_at=now, late_until=now))
        with pytest.raises(IntegrityError):
            await session.commit()


def test_no_table_has_an_arm_column():
    forbidden = ("arm", "treatment", "placebo", "randomi", "allocation", "blind")
    for table in SQLModel.metadata.tables.values():
        for column in table.columns:
            assert not any(word in column.name.lower() for word in forbidden), f"{table.name}.{column.name}"
