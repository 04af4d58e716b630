"""Typed, validated settings loaded from one TOML file (no global singleton).

Every model forbids unknown keys, so a misspelt key is an error that names it rather than a
silently ignored setting. The bot token comes from TELEGRAM_BOT_TOKEN when set and is held
as a SecretStr so it never appears in a repr, a log line or a validation error.
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import date, time
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from bot.domain.hours import QuietHours, WorkingHours
from bot.channels.port import Account, ChannelName, Recipient
from bot.domain.keywords import FeverRule, KeywordRule
from bot.domain.triage import TriageLevel

CONFIG_ENV = "ADHERENCE_BOT_CONFIG"
TOKEN_ENV = "TELEGRAM_BOT_TOKEN"
WEBHOOK_SECRET_ENV = "TELEGRAM_WEBHOOK_SECRET"
MIGRATE_URL_ENV = "ADHERENCE_BOT_MIGRATE_URL"
SMTP_PASSWORD_ENV = "ADHERENCE_SMTP_PASSWORD"
TELEGRAM_API = "https://api.telegram.org/bot"


class ConfigError(Exception):
    """A configuration problem, phrased for an operator: which key, what is wrong."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_hhmm(value: str, *, allow_24: bool = False) -> time | None:
    """'08:00' → time(8, 0). '24:00' (end of day) → None when allowed."""
    if allow_24 and value == "24:00":
        return None
    try:
        hours, minutes = value.split(":")
        if len(hours) != 2 or len(minutes) != 2:
            raise ValueError
        return time(int(hours), int(minutes))
    except ValueError:
        raise ValueError(f"expected a time as HH:MM, got {value!r}") from None


def _check_hhmm(value: str) -> str:
    parse_hhmm(value)
    return value


class WebhookSettings(_Strict):
    listen: str = "127.0.0.1"
    port: int = Field(8443, ge=1, le=65535)
    url_path: str = "telegram"
    public_url: str = ""
    secret_token: SecretStr = SecretStr("")


# Telegram usernames: 5-32 characters, letters, digits and underscores, starting with a letter;
# a bot's ends in "bot". Invitation links are https://t.me/<username>?start=<token>.
BOT_USERNAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{2,29}[Bb][Oo][Tt]$")
MIN_WEBHOOK_SECRET = 32


class TelegramSettings(_Strict):
    token: SecretStr = SecretStr("")
    base_url: str = TELEGRAM_API
    mode: Literal["polling", "webhook"] = "polling"
    bot_username: str = "adherence_trial_bot"
    webhook: WebhookSettings = WebhookSettings()

    @field_validator("bot_username")
    @classmethod
    def _username(cls, value: str) -> str:
        if not BOT_USERNAME_RE.match(value):
            raise ValueError(
                f"{value!r} is not a Telegram bot username: give it without '@', 5-32 letters, digits or "
                "underscores, starting with a letter and ending in 'bot' (as @BotFather shows it)")
        return value


class DatabaseSettings(_Strict):
    url: str = "sqlite+aiosqlite:///adherence.db"
    # PostgreSQL: the owner role `migrate` connects as (the bot itself runs as `url`'s role, which
    # then gets only the runtime grants). Empty: migrate with `url`. Better given as
    # ADHERENCE_BOT_MIGRATE_URL when it holds a password.
    migrate_url: str = ""

    @field_validator("url", "migrate_url")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        if value and not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://", "postgresql://")):
            raise ValueError("use sqlite+aiosqlite:///FILE or postgresql+asyncpg://USER@HOST/DB")
        return value


class TrialSettings(_Strict):
    name: str = "NCT07101627"
    protocol_id: str = "MA-CTIT-II-013"
    course_days: int = Field(14, ge=1, le=60)
    start_offset_days: int = Field(1, ge=0, le=14)
    cycle_length_days: int = Field(21, ge=1, le=90)
    consent_version: str = "v1"
    invitation_expiry_days: int = Field(7, ge=1, le=90)


class MedicationSettings(_Strict):
    name_en: str = "study tablets"
    name_zh: str = "研究药物"
    dose_text: str = "7.5 mg"
    fast_before_hours: float = Field(2, ge=0, le=12)
    fast_after_hours: float = Field(1, ge=0, le=12)
    minerals_after_hours: float = Field(4, ge=0, le=24)
    show_eat_after_note: bool = True

    def name(self, locale: str) -> str:
        return self.name_zh if locale.startswith("zh") else self.name_en


class ReminderSettings(_Strict):
    default_time: str = "08:00"
    time_choices: list[str] = ["07:00", "08:00", "21:00", "22:00"]
    followup_minutes: int = Field(120, ge=1, le=720)
    followup_count: int = Field(1, ge=0, le=5)
    snooze_minutes: int = Field(30, ge=1, le=240)
    max_snoozes: int = Field(2, ge=0, le=5)
    day_closes_at: str = "24:00"
    late_grace_hours: int = Field(24, ge=1, le=72)
    next_morning_time: str = "08:00"
    quiet_hours_start: str = "22:30"
    quiet_hours_end: str = "06:30"

    _times = field_validator("default_time", "next_morning_time", "quiet_hours_start", "quiet_hours_end")(
        classmethod(lambda cls, v: _check_hhmm(v))
    )

    @field_validator("time_choices")
    @classmethod
    def _choices(cls, value: list[str]) -> list[str]:
        for item in value:
            _check_hhmm(item)
        return value

    @field_validator("day_closes_at")
    @classmethod
    def _close(cls, value: str) -> str:
        if parse_hhmm(value, allow_24=True) == time(0, 0):
            raise ValueError('a day cannot close at its own start; use "24:00" for the end of the day')
        return value

    @property
    def quiet_hours(self) -> QuietHours:
        return QuietHours(parse_hhmm(self.quiet_hours_start), parse_hhmm(self.quiet_hours_end))

    @property
    def close_time(self) -> time | None:
        return parse_hhmm(self.day_closes_at, allow_24=True)


class AlertSettings(_Strict):
    repeat_minutes: int = Field(5, ge=1, le=120)
    escalate_after_minutes: int = Field(15, ge=1, le=720)
    consecutive_missed_threshold: int = Field(2, ge=1, le=14)
    digest_time: str = "08:30"
    # A patient's reports beyond this many in an hour are still saved and added to their open
    # alert, but no longer edit the team's alert messages; the patient is told the team has them.
    max_reports_per_hour: int = Field(6, ge=1, le=100)

    _times = field_validator("digest_time")(classmethod(lambda cls, v: _check_hhmm(v)))


class DeliverySettings(_Strict):
    global_per_second: float = Field(30, gt=0, le=1000)
    per_chat_per_second: float = Field(1, gt=0, le=100)
    sweep_seconds: float = Field(60, gt=0, le=3600)
    send_timeout_seconds: float = Field(10, gt=0, le=120)


_EMAIL_RE = r"^[^@\s\x00-\x1f<>,;]+@[^@\s\x00-\x1f<>,;]+\.[^@\s\x00-\x1f<>,;]+$"
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class EmailSettings(_Strict):
    """SMTP for staff alerts (bot.channels.email). The password comes only from
    $ADHERENCE_SMTP_PASSWORD, never from the file, and is held as a SecretStr."""

    enabled: bool = False
    host: str = ""
    port: int = Field(587, ge=1, le=65535)
    # starttls (submission, port 587) | tls (implicit TLS, port 465) | none (loopback relays only)
    tls: Literal["starttls", "tls", "none"] = "starttls"
    user: str = ""
    password: SecretStr = SecretStr("")
    from_address: str = Field("", pattern=r"^$|" + _EMAIL_RE)
    timeout_seconds: float = Field(15, gt=0, le=120)


class LoggingSettings(_Strict):
    format: Literal["kv", "json"] = "kv"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class ConmedCategory(_Strict):
    """One choice in the prohibited-medicine pick-list (signed off by the study physician)."""

    code: str = Field(pattern=r"^[a-z0-9_]{1,16}$")
    en: str = Field(min_length=1, max_length=60)
    zh: str = Field(min_length=1, max_length=30)

    def label(self, locale: str) -> str:
        return self.zh if locale.startswith("zh") else self.en


_CONMED_DEFAULTS = [
    ConmedCategory(code="tcm", en="Traditional Chinese medicine or herbs", zh="中药或草药"),
    ConmedCategory(code="antiplatelet", en="Aspirin or another antiplatelet drug", zh="阿司匹林或其他抗血小板药"),
    ConmedCategory(code="anticoagulant", en="A blood thinner (anticoagulant)", zh="抗凝药（防血栓的药）"),
    ConmedCategory(code="platelet_drug", en="Another drug to raise platelets", zh="其他升血小板的药"),
    ConmedCategory(code="other", en="Something else", zh="其他药物"),
]


class ConmedSettings(_Strict):
    """The prohibited-medicine check: one tap-only question with each course's plan and once
    mid-course. Off unless switched on for a trial whose protocol excludes such medicines."""

    enabled: bool = False
    # The course day (1 = first dosing day) on whose reminder instant the mid-course question
    # is asked; 0 asks only at the start of the course.
    mid_course_day: int = Field(8, ge=0, le=60)
    # Rewording for another trial; empty keeps the built-in (translated) question.
    question_en: str = Field("", max_length=400)
    question_zh: str = Field("", max_length=200)
    categories: list[ConmedCategory] = Field(default_factory=lambda: list(_CONMED_DEFAULTS), min_length=1,
                                             max_length=8)

    @field_validator("categories")
    @classmethod
    def _unique_codes(cls, value: list[ConmedCategory]) -> list[ConmedCategory]:
        codes = [c.code for c in value]
        if len(set(codes)) != len(codes):
            raise ValueError("category codes must be unique")
        return value

    def by_code(self) -> dict[str, ConmedCategory]:
        return {c.code: c for c in self.categories}


class AccountabilitySettings(_Strict):
    """Tablet accountability: at the end of each course the patient is asked how many tablets
    are left; the answer is compared with what the dose record implies. Off unless switched on."""

    enabled: bool = False
    tablets_per_course: int = Field(14, ge=1, le=500)  # dispensed for each course
    # |reported left − expected left| above this raises an info alert to the site.
    tolerance: int = Field(1, ge=0, le=500)


class VisitKind(_Strict):
    code: str = Field(pattern=r"^[a-z0-9_]{1,16}$")
    en: str = Field(min_length=1, max_length=40)
    zh: str = Field(min_length=1, max_length=20)

    def label(self, locale: str) -> str:
        return self.zh if locale.startswith("zh") else self.en


_VISIT_KINDS = [VisitKind(code="blood_test", en="blood test", zh="抽血检查"),
                VisitKind(code="clinic_visit", en="clinic visit", zh="门诊复查"),
                VisitKind(code="chemotherapy", en="chemotherapy", zh="化疗")]


class VisitSettings(_Strict):
    """Blood-test and clinic visit reminders (the day before at the patient's reminder time, and
    `hours_before` the visit). Off unless switched on."""

    enabled: bool = False
    hours_before: int = Field(2, ge=1, le=12)
    kinds: list[VisitKind] = Field(default_factory=lambda: list(_VISIT_KINDS), min_length=1, max_length=10)

    @field_validator("kinds")
    @classmethod
    def _unique_kinds(cls, value: list[VisitKind]) -> list[VisitKind]:
        codes = [k.code for k in value]
        if len(set(codes)) != len(codes):
            raise ValueError("visit kind codes must be unique")
        return value

    def by_code(self) -> dict[str, VisitKind]:
        return {k.code: k for k in self.kinds}


class Coordinator(_Strict):
    telegram_id: int = Field(gt=0)
    # Alerts also go here when the site's alert_channels include "email" (no health detail in it).
    email: str = Field("", pattern=r"^$|" + _EMAIL_RE)
    role: Literal["coordinator", "admin"] = "coordinator"
    locale: Literal["zh_Hans", "en"] = "zh_Hans"
    # How this person is shown on acknowledgements and in exports instead of their Telegram id,
    # e.g. "NJ nurse 1". Optional: without it, "<site> <role> <n>" (bot.services.staff).
    label: str = Field("", max_length=40, pattern=r"^[^\x00-\x1f]*$")

    @property
    def account(self) -> Account:
        """Who this person is when they write to the bot."""
        return Account.telegram(self.telegram_id)

    @property
    def recipients(self) -> list[Recipient]:
        """Everywhere this person can be reached (their Telegram chat, their mailbox)."""
        return [Recipient.telegram(self.telegram_id)] + ([Recipient.email(self.email)] if self.email else [])


class Site(_Strict):
    id: str = Field(pattern=r"^[A-Z0-9]{1,8}$")
    name_en: str
    name_zh: str
    timezone: str = "Asia/Shanghai"
    phone: str
    alert_chat_id: int = 0
    escalation_contact: int = 0  # numeric Telegram id; 0 with escalation_email = an email-only contact
    escalation_email: str = Field("", pattern=r"^$|" + _EMAIL_RE)
    # Where the team's alert copies go: Telegram (the alert chat or each coordinator), email (each
    # coordinator with an email address), or both. The escalation contact is paged on every
    # channel it has an address for.
    alert_channels: list[Literal["telegram", "email"]] = Field(["telegram"], min_length=1)
    coordinators: list[Coordinator] = []
    # When the study team reads same-day alerts and relayed messages (site-local). Emergencies
    # never wait for them; same-day wording, escalation deadlines and relay replies follow them.
    working_hours: list[str] = ["08:00", "17:30"]
    working_days: list[int] = [1, 2, 3, 4, 5]  # ISO weekdays: 1 = Monday … 7 = Sunday
    holidays: list[date] = []

    def alert_chats(self) -> list[Recipient]:
        """The site's Telegram alert chat, else each coordinator privately (also the digest's readers)."""
        if self.alert_chat_id:
            return [Recipient.telegram(self.alert_chat_id)]
        return [Recipient.telegram(c.telegram_id) for c in self.coordinators]

    def alert_recipients(self) -> list[Recipient]:
        """Where the team's alert copies go, per `alert_channels`."""
        recipients: list[Recipient] = []
        if ChannelName.TELEGRAM in self.alert_channels:
            recipients += self.alert_chats()
        if ChannelName.EMAIL in self.alert_channels:
            recipients += [Recipient.email(c.email) for c in self.coordinators if c.email]
        return recipients

    def escalation_recipients(self) -> list[Recipient]:
        """The escalation contact, on every channel it has an address for (it may be email-only)."""
        return ([Recipient.telegram(self.escalation_contact)] if self.escalation_contact else []) + \
            ([Recipient.email(self.escalation_email)] if self.escalation_email else [])

    def is_escalation_contact(self, account: Account) -> bool:
        return bool(self.escalation_contact) and account == Account.telegram(self.escalation_contact)

    def account_reached_at(self, recipient: Recipient) -> Account | None:
        """The account of the staff member (or escalation contact) this address belongs to."""
        for coordinator in self.coordinators:
            if recipient in coordinator.recipients:
                return coordinator.account
        if self.escalation_contact and recipient in self.escalation_recipients():
            return Account.telegram(self.escalation_contact)
        return None

    def staff_labels(self) -> list[tuple[str, set[str]]]:
        """Each staff member's label with every form a database row may name them by: account key,
        address, and the bare Telegram id rows written before accounts (migration 0010) carry."""
        labels: list[tuple[str, set[str]]] = []
        counters: dict[str, int] = {}
        for person in self.coordinators:
            counters[person.role] = counters.get(person.role, 0) + 1
            names = {person.account.key, str(person.telegram_id)} | {_name_of(r) for r in person.recipients}
            labels.append((person.label or f"{self.id} {person.role} {counters[person.role]}", names))
        contact = {_name_of(r) for r in self.escalation_recipients()}
        if self.escalation_contact:
            contact |= {Account.telegram(self.escalation_contact).key, str(self.escalation_contact)}
        if contact:
            labels.append((f"{self.id} escalation contact", contact))
        if self.alert_chat_id:
            labels.append((f"{self.id} alert chat", {str(self.alert_chat_id), _name_of(Recipient.telegram(
                self.alert_chat_id))}))
        return labels

    @field_validator("alert_channels")
    @classmethod
    def _unique_channels(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("list each channel once")
        return value

    @field_validator("working_hours")
    @classmethod
    def _hours(cls, value: list[str]) -> list[str]:
        if len(value) != 2:
            raise ValueError('give a start and an end, e.g. ["08:00", "17:30"]')
        start, end = (parse_hhmm(_check_hhmm(v)) for v in value)
        if start >= end:
            raise ValueError("the working day must end after it starts")
        return value

    @field_validator("working_days")
    @classmethod
    def _days(cls, value: list[int]) -> list[int]:
        if not value or any(d < 1 or d > 7 for d in value):
            raise ValueError("list ISO weekdays 1 (Monday) to 7 (Sunday), at least one")
        return value

    @property
    def hours(self) -> WorkingHours:
        start, end = (parse_hhmm(v) for v in self.working_hours)
        return WorkingHours(start=start, end=end, weekdays=frozenset(d - 1 for d in self.working_days),
                            holidays=frozenset(self.holidays), tz=self.tz)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA timezone {value!r}") from None
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def name(self, locale: str) -> str:
        return self.name_zh if locale.startswith("zh") else self.name_en


class Symptom(_Strict):
    code: str = Field(pattern=r"^[a-z0-9_]{1,24}$")
    level: Literal["emergency", "same_day", "log"]
    group: Literal["bleeding", "clot", "liver", "other"]
    en: str
    zh: str
    # Short button labels (the picker shows the full wording in its text); default: the full wording.
    short_en: str | None = Field(None, min_length=1, max_length=40)
    short_zh: str | None = Field(None, min_length=1, max_length=20)

    def label(self, locale: str) -> str:
        return self.zh if locale.startswith("zh") else self.en

    def short(self, locale: str) -> str:
        return (self.short_zh or self.zh) if locale.startswith("zh") else (self.short_en or self.en)


class KeywordList(_Strict):
    """Words (either language) that put a patient's free-text message at `level`."""

    code: str = Field(pattern=r"^[a-z0-9_]{1,24}$")
    level: Literal["emergency", "same_day"]
    words: list[str] = Field(min_length=1)


class FeverSettings(_Strict):
    """A fever word with a temperature at or above `threshold_c` (°C; Fahrenheit is converted)."""

    threshold_c: float = Field(38.0, ge=37.0, le=41.0)
    level: Literal["emergency", "same_day"] = "emergency"
    words: list[str] = ["发烧", "发热", "高烧", "体温", "fever", "temperature", "temp"]


class TriageSettings(_Strict):
    symptoms: list[Symptom]
    keywords: list[KeywordList] = []
    fever: FeverSettings = FeverSettings()

    @field_validator("symptoms")
    @classmethod
    def _unique(cls, value: list[Symptom]) -> list[Symptom]:
        codes = [s.code for s in value]
        duplicates = sorted({c for c in codes if codes.count(c) > 1})
        if duplicates:
            raise ValueError(f"duplicate symptom codes: {', '.join(duplicates)}")
        if not any(s.level == "emergency" for s in value):
            raise ValueError("at least one emergency symptom is required")
        return value

    def by_code(self) -> dict[str, Symptom]:
        return {s.code: s for s in self.symptoms}

    def keyword_rules(self) -> tuple[list[KeywordRule], FeverRule]:
        rules = [KeywordRule(k.code, TriageLevel.from_key(k.level), tuple(k.words)) for k in self.keywords]
        fever = FeverRule(tuple(self.fever.words), self.fever.threshold_c, TriageLevel.from_key(self.fever.level))
        return rules, fever


class HelperSettings(_Strict):
    """The family helper: with the patient's consent, up to `max_per_patient` people (a son or
    daughter) get short notices and may report a symptom on the patient's behalf. Off unless
    switched on."""

    enabled: bool = False
    max_per_patient: int = Field(2, ge=1, le=5)
    invitation_days: int = Field(7, ge=1, le=30)  # a helper invitation expires after this many days
    # Rewording for another trial; empty keeps the built-in (translated) notice. Plain text: the
    # course dates or the day's date are added on their own line.
    course_start_en: str = Field("", max_length=300)
    course_start_zh: str = Field("", max_length=150)
    not_reported_en: str = Field("", max_length=300)
    not_reported_zh: str = Field("", max_length=150)


class Settings(_Strict):
    telegram: TelegramSettings = TelegramSettings()
    database: DatabaseSettings = DatabaseSettings()
    trial: TrialSettings = TrialSettings()
    medication: MedicationSettings = MedicationSettings()
    reminders: ReminderSettings = ReminderSettings()
    alerts: AlertSettings = AlertSettings()
    delivery: DeliverySettings = DeliverySettings()
    logging: LoggingSettings = LoggingSettings()
    email: EmailSettings = EmailSettings()
    conmed: ConmedSettings = ConmedSettings()
    accountability: AccountabilitySettings = AccountabilitySettings()
    visits: VisitSettings = VisitSettings()
    helpers: HelperSettings = HelperSettings()
    sites: list[Site] = Field(min_length=1)
    triage: TriageSettings

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        ids = [s.id for s in self.sites]
        if len(set(ids)) != len(ids):
            raise ValueError("site ids must be unique")
        seen: dict[int, str] = {}
        for site in self.sites:
            for coordinator in site.coordinators:
                if coordinator.telegram_id in seen and seen[coordinator.telegram_id] != site.id:
                    raise ValueError(f"coordinator {coordinator.telegram_id} is listed at two sites; use role admin")
                seen[coordinator.telegram_id] = site.id
        if self.conmed.mid_course_day > self.trial.course_days:
            raise ValueError(f"conmed.mid_course_day ({self.conmed.mid_course_day}) is after the course's last day "
                             f"({self.trial.course_days}); use 0 for no mid-course question")
        return self

    def staff_member(self, account: Account | None) -> tuple[Site, Coordinator] | None:
        """(site, coordinator) for a configured coordinator's account, else None."""
        for site in self.sites:
            for coordinator in site.coordinators:
                if account is not None and coordinator.account == account:
                    return site, coordinator
        return None

    def staff_label(self, who: Account | Recipient | str | int | None) -> str | None:
        """The configured label of a coordinator, escalation contact or alert chat named by an
        account, an address, an account key or (rows from before accounts) a bare Telegram id."""
        if who is None:
            return None
        wanted = _name_of(who)
        for site in self.sites:
            for label, names in site.staff_labels():
                if wanted in names:
                    return label
        return None

    def invitation_link(self, token: str) -> str:
        """The deep link that opens the bot with this invitation token."""
        return f"https://t.me/{self.telegram.bot_username}?start={token}"

    def site(self, site_id: str) -> Site:
        for site in self.sites:
            if site.id == site_id:
                return site
        raise KeyError(site_id)

    @property
    def token(self) -> str:
        return self.telegram.token.get_secret_value()

    def with_overrides(self, **sections: object) -> Settings:
        """A copy with whole sections or top-level fields replaced (used by tests and the demo)."""
        return self.model_copy(update=sections)


def _name_of(who: Account | Recipient | str | int) -> str:
    if isinstance(who, Account):
        return who.key
    if isinstance(who, Recipient):
        return f"{who.channel}>{who.address.lower() if who.channel == ChannelName.EMAIL else who.address}"
    return str(who).strip()


# The placeholders of config.example.toml: a copied example must not reach patients with them.
PLACEHOLDER_TELEGRAM_IDS = frozenset({100000001, 100000002, 100000009, 100000011, 100000019})
_PHONE_RE = re.compile(r"^\+?[0-9][0-9 ()-]{4,}[0-9]$")


def _placeholder_phone(phone: str) -> bool:
    """'+86-25-0000-0000': the subscriber number is all zeros (or missing)."""
    digits = re.sub(r"[^0-9]", "", phone)
    return len(digits) < 5 or set(digits[-7:]) == {"0"}


def deployment_problems(settings: Settings, *, sandbox: bool = False) -> list[str]:
    """What makes a configuration unsafe or unworkable with real patients, one line per problem,
    each naming the key and the fix. `sandbox` (the demo, the local Bot API sandbox) allows the
    example's placeholder ids and phones; nothing else is relaxed."""
    problems: list[str] = []
    telegram = settings.telegram
    if telegram.mode == "webhook":
        public_url = telegram.webhook.public_url
        if not re.match(r"^https://[^/\s:]+", public_url):
            problems.append(
                f"telegram.webhook.public_url: {public_url!r} is not an https:// URL; webhook mode needs the "
                "public HTTPS address of your reverse proxy (e.g. https://bot.example-hospital.cn), "
                "or use mode = \"polling\"")
        if len(telegram.webhook.secret_token.get_secret_value()) < MIN_WEBHOOK_SECRET:
            problems.append(
                f"telegram.webhook.secret_token: shorter than {MIN_WEBHOOK_SECRET} characters, so forged updates "
                "could be accepted; set TELEGRAM_WEBHOOK_SECRET to a random value, e.g. the output of "
                "`openssl rand -hex 32`")
    problems += _email_problems(settings)
    for index, site in enumerate(settings.sites):
        key = f"sites.{index}"
        by_telegram = "telegram" in site.alert_channels and (site.coordinators or site.alert_chat_id)
        by_email = "email" in site.alert_channels and any(c.email for c in site.coordinators)
        if not by_telegram and not by_email:
            problems.append(
                f"{key}: site {site.id} has no alert recipient; list at least one coordinator "
                f"({key}.coordinators) or set {key}.alert_chat_id to the site's alert group"
                + (", and give coordinators an email address" if "email" in site.alert_channels else ""))
        if "email" in site.alert_channels and not any(c.email for c in site.coordinators):
            problems.append(f"{key}.alert_channels: site {site.id} sends alerts by email but none of its "
                            f"coordinators has an email address; set {key}.coordinators.N.email")
        if site.escalation_contact == 0 and not site.escalation_email:
            problems.append(
                f"{key}.escalation_contact: site {site.id} has no escalation contact; set the numeric Telegram id "
                "of the person who is paged when an emergency alert is not acknowledged (or "
                f"{key}.escalation_email for a contact without Telegram)")
        if not _PHONE_RE.match(site.phone.strip()):
            problems.append(f"{key}.phone: {site.phone!r} is not a phone number; give the number patients "
                            "should call, e.g. +86-25-8328-xxxx")
        if sandbox:
            continue
        if _placeholder_phone(site.phone):
            problems.append(
                f"{key}.phone: {site.phone!r} is the example's placeholder; patients see this number in "
                "emergency messages, so set the site's real study phone")
        placeholders = [c.telegram_id for c in site.coordinators if c.telegram_id in PLACEHOLDER_TELEGRAM_IDS]
        if placeholders:
            problems.append(
                f"{key}.coordinators: {', '.join(map(str, placeholders))} are the example's placeholder ids; "
                "replace them with your coordinators' numeric Telegram ids (each can get theirs from @userinfobot)")
        if site.escalation_contact in PLACEHOLDER_TELEGRAM_IDS:
            problems.append(
                f"{key}.escalation_contact: {site.escalation_contact} is the example's placeholder id; set the "
                "numeric Telegram id of the person paged when an emergency alert is not acknowledged")
    return problems


def _email_problems(settings: Settings) -> list[str]:
    """Fail closed: an email address anywhere needs a working, encrypted [email] section."""
    email = settings.email
    used = any("email" in s.alert_channels or s.escalation_email for s in settings.sites)
    if not email.enabled:
        return ["email.enabled: alerts are configured to go by email (alert_channels or escalation_email) "
                "but [email] is off; set enabled = true with the SMTP server, or remove the email settings"] \
            if used else []
    problems = []
    if not email.host:
        problems.append("email.host: the SMTP server's host name is missing")
    if not email.from_address:
        problems.append("email.from_address: the sender address is missing, e.g. adherence-bot@hospital.cn")
    if email.tls == "none" and email.host not in LOOPBACK_HOSTS:
        problems.append(f"email.tls: \"none\" would send alerts unencrypted to {email.host}; use \"starttls\" "
                        "or \"tls\" (\"none\" is allowed only for a relay on this machine)")
    if email.user and not email.password.get_secret_value():
        problems.append(f"email.user: set ${SMTP_PASSWORD_ENV} to the SMTP password for {email.user}")
    return problems


def require_deployable(settings: Settings, *, sandbox: bool = False) -> Settings:
    """Fail closed: raise ConfigError listing every problem found by deployment_problems."""
    problems = deployment_problems(settings, sandbox=sandbox)
    if problems:
        raise ConfigError("\n".join(problems))
    return settings


def _format_errors(error: ValidationError) -> str:
    lines = []
    for item in error.errors(include_url=False, include_input=False):
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        elif item["type"] == "missing":
            message = "required key is missing"
        lines.append(f"{key}: {message}")
    return "\n".join(lines)


def settings_from_mapping(data: dict, *, env: dict[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    data = {**data, "telegram": dict(data.get("telegram", {}))}
    if env.get(TOKEN_ENV):
        data["telegram"]["token"] = env[TOKEN_ENV]
    if env.get(WEBHOOK_SECRET_ENV):
        data["telegram"]["webhook"] = {**data["telegram"].get("webhook", {}), "secret_token": env[WEBHOOK_SECRET_ENV]}
    if "password" in data.get("email", {}):
        raise ConfigError(f"email.password: do not write the SMTP password in the file; set ${SMTP_PASSWORD_ENV}")
    if env.get(SMTP_PASSWORD_ENV):
        data["email"] = {**data.get("email", {}), "password": env[SMTP_PASSWORD_ENV]}
    if env.get(MIGRATE_URL_ENV):
        data["database"] = {**data.get("database", {}), "migrate_url": env[MIGRATE_URL_ENV]}
    try:
        return Settings.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_format_errors(error)) from None


def default_config_path() -> Path:
    return Path(os.environ.get(CONFIG_ENV) or "config.toml")


def load_settings(path: str | Path | None = None, *, env: dict[str, str] | None = None) -> Settings:
    path = Path(path) if path else default_config_path()
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read configuration ({error.strerror})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    try:
        return settings_from_mapping(data, env=env)
    except ConfigError as error:
        raise ConfigError(f"{path}:\n{error}") from None
