"""SQLModel tables. The database is the source of truth (DESIGN.md §3).

States are stored as short strings whose meaning lives in `bot.domain`; there is deliberately
no column anywhere for a study arm (a test keeps it that way).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from bot.channels.port import Account, Recipient
from bot.db.types import UTCDateTime


def _instant(*, nullable: bool = False, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


def _big_id(*, nullable: bool = True, index: bool = False) -> Any:
    # Update and message ids of a channel exceed 32 bits.
    return Field(default=None, sa_type=BigInteger, nullable=nullable, index=index)


def _account_key(*, nullable: bool = True) -> Any:
    # bot.channels.port.Account.key: "<channel>:<id on that channel>", e.g. "telegram:42".
    return Field(default=None, max_length=64, nullable=nullable)


class Invitation(SQLModel, table=True):
    """A single-use enrolment token. Only its SHA-256 hash is stored."""

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    site_id: str = Field(max_length=8, index=True)
    subject_id: str | None = Field(default=None, max_length=32)
    purpose: str = Field(default="enrol", max_length=16)  # enrol | rebind
    created_by: str = Field(max_length=32)
    created_at: datetime = _instant()
    expires_at: datetime = _instant()
    used_at: datetime | None = _instant(nullable=True)
    used_by_account: str | None = _account_key()
    revoked_at: datetime | None = _instant(nullable=True)
    revoked_by: str | None = Field(default=None, max_length=32)


class _Reached:
    """A person reached on a channel (patients and helpers): `channel`, `account`, `address`."""

    @property
    def recipient(self) -> Recipient | None:
        """Where the bot writes to this person (None until bound)."""
        return Recipient(self.channel, self.address) if self.address else None

    @property
    def account_key(self) -> str | None:
        """How the audit trail and dialogs name this person (bot.channels.port.Account.key)."""
        return Account(self.channel, self.account).key if self.account else None


class Patient(_Reached, SQLModel, table=True):
    """A pseudonymous participant: no name, phone, diagnosis or record number. `account` is the
    person's id on `channel` (who writes to us), `address` where the bot writes to them; both text,
    both None until an invitation is spent."""

    __table_args__ = (Index("ix_patient_channel_account", "channel", "account"),)

    id: int | None = Field(default=None, primary_key=True)
    subject_id: str = Field(max_length=32, unique=True)
    site_id: str = Field(max_length=8, index=True)
    channel: str = Field(default="telegram", max_length=16)  # bot.channels.port.ChannelName
    account: str | None = Field(default=None, max_length=64)
    address: str | None = Field(default=None, max_length=254)
    locale: str = Field(default="zh_Hans", max_length=8)
    timezone: str = Field(default="Asia/Shanghai", max_length=64)
    reminder_time: str = Field(default="08:00", max_length=5)
    status: str = Field(default="active", max_length=16)  # active | paused | withdrawn
    # While paused: who paused (bot.domain.dose.PauseOrigin: patient | team), why and when.
    pause_origin: str | None = Field(default=None, max_length=16)
    pause_reason: str | None = Field(default=None, sa_type=Text)
    paused_at: datetime | None = _instant(nullable=True)
    unreachable: bool = False
    consent_version: str | None = Field(default=None, max_length=32)
    consented_at: datetime | None = _instant(nullable=True)
    # The patient's consent to family helpers (given in the chat; None: not given or withdrawn).
    helper_consent_at: datetime | None = _instant(nullable=True)
    enrolled_at: datetime | None = _instant(nullable=True)
    created_at: datetime = _instant()


class Course(SQLModel, table=True):
    """One cycle's 14-day course, anchored to that cycle's chemotherapy end date."""

    __table_args__ = (UniqueConstraint("patient_id", "cycle", name="uq_course_patient_cycle"),)

    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    cycle: int
    chemo_end: date
    first_day: date
    last_day: date
    status: str = Field(default="active", max_length=16)  # active | cancelled
    source: str = Field(default="coordinator", max_length=16)  # coordinator | patient | cli
    confirmed: bool = True
    created_at: datetime = _instant()
    created_by: str = Field(max_length=32)


class DoseDay(SQLModel, table=True):
    """Current state of one course day; its history is in DoseEvent and the audit log."""

    __tablename__ = "dose_day"

    __table_args__ = (
        UniqueConstraint("patient_id", "cycle", "day", name="uq_dose_day_patient_cycle_day"),
        Index("ix_dose_day_state_closes", "state", "closes_at"),
        # The scheduler's look-ups by instant (`scheduler.lifecycle`): scheduled days by due time
        # (the reminders due, the next one), and every day by its close (the next close, the
        # courses that just ended).
        Index("ix_dose_day_state_due", "state", "due_at"),
        Index("ix_dose_day_closes", "closes_at"),
        # One dose day per patient per local date: at most one dose per calendar day.
        Index("uq_dose_day_patient_date_live", "patient_id", "local_date", unique=True,
              sqlite_where=text("state <> 'cancelled'"), postgresql_where=text("state <> 'cancelled'")),
    )

    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    course_id: int = Field(foreign_key="course.id", index=True)
    cycle: int
    day: int
    local_date: date
    due_at: datetime = _instant()
    closes_at: datetime = _instant()
    late_until: datetime = _instant()
    state: str = Field(default="scheduled", max_length=24)  # bot.domain.dose.DoseState
    # Kept after a correction moved the course away from its date: a record, not a course day.
    out_of_window: bool = False
    answered_at: datetime | None = _instant(nullable=True)
    late: bool = False
    source: str | None = Field(default=None, max_length=16)  # bot.domain.dose.AnswerSource
    missed_reason: str | None = Field(default=None, max_length=16)
    snoozes: int = 0
    reminder_queued_at: datetime | None = _instant(nullable=True)
    reminder_message_id: int | None = _big_id()


class DoseEvent(SQLModel, table=True):
    """Every change of a dose day, in order. Corrections are new rows, never overwrites."""

    __tablename__ = "dose_event"

    id: int | None = Field(default=None, primary_key=True)
    dose_day_id: int = Field(foreign_key="dose_day.id", index=True)
    at: datetime = _instant()
    kind: str = Field(max_length=16)  # answer | close | correction | snooze | reanchor | void | carried
    from_state: str = Field(max_length=24)
    to_state: str = Field(max_length=24)
    late: bool = False
    actor: str = Field(max_length=32)
    reason: str | None = Field(default=None, sa_type=Text)


class Outbox(SQLModel, table=True):
    """A message to send. pending → sending → sent | unknown | failed | skipped."""

    __table_args__ = (Index("ix_outbox_state_lane_due", "state", "lane", "due_at"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=24)
    lane: str = Field(default="normal", max_length=8)  # alert | normal
    channel: str = Field(default="telegram", max_length=16)  # bot.channels.port.ChannelName
    address: str = Field(max_length=254)  # Telegram chat id (as text) or email address
    patient_id: int | None = Field(default=None, foreign_key="patient.id", index=True)
    dose_day_id: int | None = Field(default=None, foreign_key="dose_day.id", index=True)
    alert_id: int | None = Field(default=None, foreign_key="alert.id", index=True)
    due_at: datetime = _instant()
    state: str = Field(default="pending", max_length=12)
    # Claim order within a lane: 0 a first emergency alert or the patient's emergency advice,
    # 1 everything else new, 2 repeats and updates of alerts already delivered.
    priority: int = 1
    attempts: int = 0
    # Times the row was re-queued after a crash left it mid-send (a possible duplicate).
    resends: int = 0
    last_error: str | None = Field(default=None, sa_type=Text)
    message_id: int | None = _big_id()
    payload: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    dedupe_key: str | None = Field(default=None, max_length=96, unique=True)
    created_at: datetime = _instant()
    claimed_at: datetime | None = _instant(nullable=True)
    claimed_by: str | None = Field(default=None, max_length=64)
    finished_at: datetime | None = _instant(nullable=True)


class SymptomReport(SQLModel, table=True):
    __tablename__ = "symptom_report"

    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    reported_at: datetime = _instant()
    symptoms: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    level: str = Field(max_length=16)
    note: str | None = Field(default=None, sa_type=Text)
    update_id: int | None = _big_id()
    helper_id: str | None = Field(default=None, max_length=24)  # reported by this helper; None: the patient


class PatientMessage(SQLModel, table=True):
    """What a patient sent outside a question (text, voice, photo, document …), and what the
    study team answered. Kept and exported: nothing a patient says is dropped."""

    __tablename__ = "patient_message"

    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    at: datetime = _instant()
    direction: str = Field(max_length=12)  # from_patient | to_patient
    kind: str = Field(max_length=12)  # text | voice | photo | document | video | audio | sticker | other
    text: str | None = Field(default=None, sa_type=Text)  # the text or the caption
    level: str = Field(default="info", max_length=16)  # info | same_day | emergency (the keyword safety net)
    matched: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    author: str = Field(max_length=48)  # the subject id, or the staff member's configured label
    channel_message_id: int | None = _big_id()  # the patient's own message, for relaying it
    alert_id: int | None = Field(default=None, foreign_key="alert.id", index=True)
    update_id: int | None = _big_id()


class ConmedReport(SQLModel, table=True):
    """The patient's answer to the prohibited-medicine check, once per course and check point
    (start of the course, mid-course). `category` is a code from the configured pick-list."""

    __tablename__ = "conmed_report"
    __table_args__ = (UniqueConstraint("patient_id", "course_id", "check_point", name="uq_conmed_report_check"),)

    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    course_id: int = Field(foreign_key="course.id", index=True)
    cycle: int
    check_point: str = Field(max_length=8)  # start | mid
    answered_at: datetime = _instant()
    answer: str = Field(max_length=8)  # yes | no
    category: str | None = Field(default=None, max_length=16)
    reported_by: str = Field(max_length=48)  # the subject id
    alert_id: int | None = Field(default=None, foreign_key="alert.id")
    update_id: int | None = _big_id()


class TabletCount(SQLModel, table=True):
    """Tablets the patient reported left at the end of a course (one answer per course), with what
    the dose record implied at that moment. The export recomputes `expected` from the record."""

    __tablename__ = "tablet_count"

    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    course_id: int = Field(foreign_key="course.id", unique=True)
    cycle: int
    answered_at: datetime = _instant()
    reported_left: int
    dispensed: int
    expected_left: int  # dispensed minus days recorded as taken, when the patient answered
    source: str = Field(max_length=8)  # button | typed
    reported_by: str = Field(max_length=48)  # the subject id
    alert_id: int | None = Field(default=None, foreign_key="alert.id")
    update_id: int | None = _big_id()


class Visit(SQLModel, table=True):
    """A blood test or clinic visit registered by the study team (at: the patient's local
    wall-clock time, stored in UTC). Moves and cancellations keep their reason; every change is
    in the audit log with before/after."""

    __table_args__ = (Index("ix_visit_status_at", "status", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    site_id: str = Field(max_length=8, index=True)
    kind: str = Field(max_length=16)
    at: datetime = _instant()
    status: str = Field(default="scheduled", max_length=12)  # scheduled | cancelled | attended
    created_at: datetime = _instant()
    created_by: str = Field(max_length=48)
    updated_at: datetime | None = _instant(nullable=True)
    reason: str | None = Field(default=None, sa_type=Text)  # the last move's or the cancellation's reason
    patient_answer: str | None = Field(default=None, max_length=8)  # coming | change
    answered_at: datetime | None = _instant(nullable=True)
    attended_at: datetime | None = _instant(nullable=True)
    attended_by: str | None = Field(default=None, max_length=48)


class Helper(_Reached, SQLModel, table=True):
    """A family helper bound to exactly one patient, with the patient's consent. Exports and
    alerts name a helper only by `helper_id` (H-<site>-<n>); channel, account and address route
    messages (as for a patient)."""

    __table_args__ = (Index("ix_helper_channel_account", "channel", "account"),)

    id: int | None = Field(default=None, primary_key=True)
    helper_id: str = Field(max_length=24, unique=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    channel: str = Field(default="telegram", max_length=16)
    account: str = Field(max_length=64)
    address: str = Field(max_length=254)
    locale: str = Field(default="zh_Hans", max_length=8)
    status: str = Field(default="active", max_length=12)  # active | removed
    invitation_id: int | None = Field(default=None, foreign_key="invitation.id")
    joined_at: datetime = _instant()
    removed_at: datetime | None = _instant(nullable=True)
    removed_by: str | None = Field(default=None, max_length=48)  # patient | coordinator:<id> | operator:cli
    removal_reason: str | None = Field(default=None, max_length=24)  # removed | consent_withdrawn


class Alert(SQLModel, table=True):
    __table_args__ = (Index("ix_alert_open_repeat", "acknowledged_at", "next_repeat_at"),)

    id: int | None = Field(default=None, primary_key=True)
    site_id: str = Field(max_length=8, index=True)
    patient_id: int | None = Field(default=None, foreign_key="patient.id", index=True)
    kind: str = Field(max_length=24)
    level: str = Field(max_length=16)  # emergency | same_day | info
    details: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    dedupe_key: str | None = Field(default=None, max_length=96, unique=True)
    created_at: datetime = _instant()
    acknowledged_at: datetime | None = _instant(nullable=True)
    acknowledged_by: str | None = _account_key()
    escalate_at: datetime | None = _instant(nullable=True)
    escalated_at: datetime | None = _instant(nullable=True)
    next_repeat_at: datetime | None = _instant(nullable=True)
    repeats: int = 0


class AlertMessage(SQLModel, table=True):
    """Each copy of an alert that was sent, so acknowledgement can edit them all."""

    __tablename__ = "alert_message"

    id: int | None = Field(default=None, primary_key=True)
    alert_id: int = Field(foreign_key="alert.id", index=True)
    channel: str = Field(default="telegram", max_length=16)
    address: str = Field(max_length=254)
    message_id: int = Field(sa_type=BigInteger)
    sent_at: datetime = _instant()


class UnreachableRecipient(SQLModel, table=True):
    """A staff recipient (coordinator, alert chat, escalation contact) that its channel refused for
    good: blocked the bot, deactivated, mailbox gone. A Telegram chat is cleared when that person
    writes to the bot again; a refused mailbox stays until its row is deleted (no command yet)."""

    __tablename__ = "unreachable_recipient"

    channel: str = Field(max_length=16, primary_key=True)
    address: str = Field(max_length=254, primary_key=True)
    site_id: str = Field(max_length=8, index=True)
    since: datetime = _instant()
    error: str = Field(sa_type=Text)


class AuditLog(SQLModel, table=True):
    """Append-only: database triggers reject UPDATE, DELETE, TRUNCATE and REPLACE, and each row
    carries a SHA-256 hash chained to the previous row's (bot.db.audit_chain)."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _instant(index=True)
    actor_kind: str = Field(max_length=16)  # patient | coordinator | system | operator | user
    actor_id: str = Field(max_length=32, index=True)
    action: str = Field(max_length=48, index=True)
    entity: str | None = Field(default=None, max_length=24)
    entity_id: str | None = Field(default=None, max_length=32)
    before: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    after: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    reason: str | None = Field(default=None, sa_type=Text)
    update_id: int | None = _big_id()
    prev_hash: str = Field(max_length=64)  # the previous row's hash ("" for the first row)
    hash: str = Field(max_length=64, unique=True)


class AuditHead(SQLModel, table=True):
    """One row, locked while audit rows are chained, so concurrent writers chain one at a time."""

    __tablename__ = "audit_head"

    id: int = Field(default=1, primary_key=True)
    sealed: int = Field(default=0, sa_type=BigInteger)  # transactions sealed so far


class StrangerAttempt(SQLModel, table=True):
    """Attempts by unauthenticated accounts, counted per account key, action and UTC day, so a
    stranger cannot grow the audit trail without bound (past a threshold only this counter moves)."""

    __tablename__ = "stranger_attempt"

    account: str = Field(primary_key=True, max_length=64)
    action: str = Field(primary_key=True, max_length=48)
    day: date = Field(primary_key=True)
    count: int = 0
    last_at: datetime = _instant()


class DialogState(SQLModel, table=True):
    """A half-done conversation (enrolment, …) per account key and dialog kind, so a restart or a
    second process continues it. Rows past `expires_at` are treated as absent."""

    __tablename__ = "dialog_state"

    channel_user_id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(primary_key=True, max_length=24)
    payload: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    expires_at: datetime = _instant()
    updated_at: datetime = _instant()


class ProcessedUpdate(SQLModel, table=True):
    """An incoming update some process has taken on (Telegram redelivers a webhook update it
    did not see answered): the first insert wins, in every process. Pruned after two days."""

    __tablename__ = "processed_update"

    channel: str = Field(primary_key=True, max_length=16)
    update_id: int = Field(primary_key=True, sa_type=BigInteger, sa_column_kwargs={"autoincrement": False})
    seen_at: datetime = _instant(index=True)


class RuntimeState(SQLModel, table=True):
    """Small key/value facts about running processes (last sweep, scheduler owner)."""

    __tablename__ = "runtime_state"

    key: str = Field(primary_key=True, max_length=48)
    value: str = Field(sa_type=Text)
    updated_at: datetime = _instant()
