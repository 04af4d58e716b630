"""An edit of a message (an alert's copy when a report or a note was added, a day's reminder when
the day was answered) races that message being sent: the courier composes each row from what
the database holds at that moment, read by statements that other transactions commit between.
Each test holds the other side at the exact point where the race once lost the edit (`make test`
saw it: a patient's note never reached the coordinator)."""

from __future__ import annotations

import asyncio
import tomllib
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, update
from sqlmodel import select

from bot.config import settings_from_mapping
from bot.db.engine import session_factory, single_statement_engine
from bot.db.models import Alert, AlertMessage, DoseDay, Outbox, Patient
from bot.domain.outbox import OutboxKind, OutboxState
from scheduler.compose import Defer, Loaded, OutgoingMessage, Skip, load, prepare
from tests.e2e.harness import EXAMPLE

NOW = datetime(2026, 12, 4, 14, 30, tzinfo=timezone.utc)
CHAT = "100000001"
MESSAGE_ID = 77
SETTINGS = settings_from_mapping(tomllib.loads(EXAMPLE.read_text("utf-8")), env={})


async def _alert_with_a_copy_in_flight(engine) -> tuple[int, Outbox]:
    """An alert whose copy to CHAT is being sent right now, and the edit queued for it."""
    async with session_factory(engine)() as session:
        patient = Patient(subject_id="NJ-0001", site_id="NJ", account="9001", address="9001", locale="en",
                          timezone="Asia/Shanghai", reminder_time="08:00", status="active", enrolled_at=NOW,
                          created_at=NOW)
        session.add(patient)
        await session.flush()
        alert = Alert(site_id="NJ", patient_id=patient.id, kind="same_day_symptom", level="same_day", created_at=NOW,
                      details={"subject_id": "NJ-0001", "symptoms": ["other_unwell"], "report_ids": [1]})
        session.add(alert)
        await session.flush()
        session.add(Outbox(kind=OutboxKind.ALERT, lane="alert", address=CHAT, alert_id=alert.id, due_at=NOW,
                           state=OutboxState.SENDING, claimed_at=NOW, claimed_by="w", attempts=1, created_at=NOW,
                           dedupe_key=f"alert:{alert.id}:{CHAT}:0"))
        edit = Outbox(kind=OutboxKind.ALERT_UPDATE, lane="alert", address=CHAT, alert_id=alert.id, due_at=NOW,
                      state=OutboxState.CLAIMED, claimed_at=NOW, claimed_by="w", created_at=NOW,
                      dedupe_key=f"alert_update:{alert.id}:{CHAT}:1.1")
        session.add(edit)
        await session.commit()
        return alert.id, edit


async def _copy_recorded(engine, alert_id: int) -> None:
    """What the courier's recorder commits when the copy is delivered: the row sent and the
    message recorded, together."""
    async with session_factory(engine)() as session:
        await session.exec(update(Outbox).where(Outbox.kind == OutboxKind.ALERT, Outbox.alert_id == alert_id)
                           .values(state=OutboxState.SENT, message_id=MESSAGE_ID, finished_at=NOW))
        await session.exec(insert(AlertMessage).values(alert_id=alert_id, channel="telegram", address=CHAT,
                                                       message_id=MESSAGE_ID, sent_at=NOW))
        await session.commit()


class _CopyLandsAfterFirstCopyQuery:
    """A session whose first read of the alert's copies (in flight or recorded, whichever the
    courier asks first) is followed at once by the copy's delivery being recorded."""

    def __init__(self, session, engine, alert_id: int) -> None:
        self.session, self.engine, self.alert_id, self.fired = session, engine, alert_id, False

    async def exec(self, statement, *args, **kwargs):
        result = await self.session.exec(statement, *args, **kwargs)
        tables = {getattr(t, "name", None) for t in statement.get_final_froms()}
        if not self.fired and tables & {"outbox", "alert_message"}:
            self.fired = True
            rows = result.all()  # read before the other commit, as a real fetch would be
            await _copy_recorded(self.engine, self.alert_id)
            return _Rows(rows)
        return result


class _Rows:
    def __init__(self, rows) -> None:
        self.rows = rows

    def all(self):
        return self.rows


async def test_an_edit_is_never_dropped_when_its_copy_lands_between_the_couriers_reads(engine):
    settings = SETTINGS
    alert_id, edit = await _alert_with_a_copy_in_flight(engine)
    async with session_factory(single_statement_engine(engine))() as session:
        racing = _CopyLandsAfterFirstCopyQuery(session, engine, alert_id)
        loaded = await load(racing, [edit], now=NOW, settings=settings)
    assert racing.fired
    plan = prepare(loaded, settings=settings, row=edit, now=NOW)
    assert not isinstance(plan, Skip), plan  # the old order read "no copy" and then "not in flight"
    assert isinstance(plan, Defer) or (isinstance(plan, OutgoingMessage) and plan.edit_of == MESSAGE_ID), plan


@pytest.mark.postgres_only
async def test_a_copy_composed_while_a_note_is_being_added_waits_for_it(engine):
    """The note's transaction has written the alert but not committed when the courier, having
    just claimed the (still pending, so not edited) copy, reads the alert: it must read the note."""
    settings = SETTINGS
    alert_id, _ = await _alert_with_a_copy_in_flight(engine)
    async with session_factory(engine)() as session:
        row = (await session.exec(select(Outbox).where(Outbox.kind == OutboxKind.ALERT))).one()
    adding = session_factory(engine)()
    try:
        await adding.exec(update(Alert).where(Alert.id == alert_id).values(details={
            "subject_id": "NJ-0001", "symptoms": ["other_unwell"], "report_ids": [1], "notes": ["my mouth is sore"]}))

        async def compose() -> str:
            async with session_factory(single_statement_engine(engine))() as session:
                loaded = await load(session, [row], now=NOW, settings=settings)
            plan = prepare(loaded, settings=settings, row=row, now=NOW)
            assert isinstance(plan, OutgoingMessage), plan
            return plan.text

        composing = asyncio.create_task(compose())
        await asyncio.sleep(0.5)
        assert not composing.done()  # it waits for the note's commit …
        await adding.commit()
        text = await asyncio.wait_for(composing, 10)
    finally:
        await adding.close()
    assert "my mouth is sore" in text  # … and renders it


def test_closing_a_reminder_that_was_on_its_way_spares_the_one_the_patient_answered_on():
    """The patient tapped a reminder delivered a moment before its delivery was recorded: the
    close that followed it (in flight when the answer came) must not overwrite the answer's own
    message (after "not today" it keeps Undo and the reasons)."""
    patient = Patient(id=1, subject_id="NJ-0001", site_id="NJ", account="9001", address="9001", locale="en",
                      timezone="Asia/Shanghai", reminder_time="08:00", status="active")
    dose = DoseDay(id=3, patient_id=1, course_id=1, cycle=1, day=1, local_date=NOW.date(), due_at=NOW,
                   closes_at=NOW, late_until=NOW, state="missed", answered_at=NOW)
    reminder = Outbox(id=5, kind=OutboxKind.REMINDER, address="9001", patient_id=1, dose_day_id=3,
                      state=OutboxState.SENT, message_id=MESSAGE_ID)
    loaded = Loaded(patients={1: patient}, doses={3: dose}, copy_rows={5: reminder})

    def close(unless):
        row = Outbox(id=6, kind=OutboxKind.REMINDER_CLOSE, address="9001", patient_id=1, dose_day_id=3,
                     payload={"copy_row": 5, "unless": unless})
        return prepare(loaded, settings=SETTINGS, row=row, now=NOW)

    assert isinstance(close(MESSAGE_ID), Skip)
    other = close(MESSAGE_ID + 1)  # answered on another message: this one is closed
    assert isinstance(other, OutgoingMessage) and other.edit_of == MESSAGE_ID and not other.actions

    reminder.state, reminder.message_id, reminder.due_at = OutboxState.SENDING, None, NOW
    assert close(None) == Defer(NOW + timedelta(seconds=1), "the message to edit is still being sent")
    reminder.state, reminder.due_at = OutboxState.PENDING, NOW + timedelta(hours=2)  # moved later: no busy wait
    assert close(None).until == NOW + timedelta(hours=2, seconds=1)
