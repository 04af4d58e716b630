"""What the simulation plays: its configuration and the trial plan drawn from the seed.

Everything random is drawn from generators seeded by (seed, what): each patient's plan from
its own generator, so running a subset of the patients (when shrinking a failure) plays
exactly the same plan for each of them; infrastructure faults and crashes from generators of
their own, so they do not shift when the patient set changes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

UTC = timezone.utc
DEFAULT_SEED = 20270201
# The trial starts here so that four cycles cross Europe/Berlin's spring DST change (2027-03-28).
TRIAL_START = date(2027, 2, 1)
USER_BASE = 5_000_000  # patients' Telegram ids; a rebound patient's new phone is USER_BASE + 500_000 + i
REBIND_BASE = 500_000
REMINDER_TIMES = ("07:00", "08:00", "21:00", "22:00")
MISSED_REASONS = ("forgot", "side_effects", "ran_out", "doctor", "other")
QUANTUM = timedelta(minutes=30)  # people act on a 30-minute grid (keeps the number of clock steps small)

# The two simulated sites: a Chinese-speaking one in Asia/Shanghai and an English-speaking one in
# a DST zone. Coordinators are configured like production (numeric ids, roles, languages).
SITES = [
    {"id": "NJ", "name_en": "Jiangsu Cancer Hospital, Nanjing", "name_zh": "江苏省肿瘤医院（南京）",
     "timezone": "Asia/Shanghai", "phone": "+86-25-0000-0000", "alert_chat_id": 0, "escalation_contact": 100000009,
     "coordinators": [{"telegram_id": 100000001, "role": "coordinator", "locale": "zh_Hans"},
                      {"telegram_id": 100000002, "role": "coordinator", "locale": "zh_Hans"}]},
    {"id": "EU", "name_en": "Simulated English-speaking site, Berlin", "name_zh": "模拟英语站点（柏林）",
     "timezone": "Europe/Berlin", "phone": "+49-30-0000-0000", "alert_chat_id": 0, "escalation_contact": 100000019,
     "coordinators": [{"telegram_id": 100000011, "role": "coordinator", "locale": "en"},
                      {"telegram_id": 100000012, "role": "admin", "locale": "en"}]},
]


@dataclass(frozen=True)
class Behaviour:
    """How people behave (probabilities per dose day unless said otherwise)."""

    on_time: float = 0.55          # "Taken" within 15 min of the reminder
    late_same_day: float = 0.10    # "Taken" hours later, usually after the follow-up
    snooze: float = 0.08           # "Remind me later" (once or twice), then an answer
    not_today: float = 0.07        # "Not today", then a reason (each reason equally likely) or none
    next_morning: float = 0.10     # silent all day, answers the next-morning question
    never: float = 0.10            # silent, never answers
    double_tap: float = 0.06       # presses the same button twice at once
    symptom_per_day: float = 0.012  # a symptom report on a given day
    symptom_levels: tuple[float, float, float] = (0.45, 0.30, 0.25)  # log, same day, emergency
    symptom_repeat: float = 0.25   # the same report sent again minutes later
    symptom_note: float = 0.4      # types a free-text note after the report
    free_text_per_day: float = 0.02
    voice_per_day: float = 0.005
    time_change: float = 0.10      # per patient: /time once during the trial
    self_pause: float = 0.05       # per patient: /stop, then /start a few days later
    team_hold: float = 0.05        # per patient: a team pause for a few days, then resume
    withdraw: float = 0.03         # per patient
    rebind: float = 0.03           # per patient: a new phone
    late_enrolment: float = 0.05   # per patient: enrols weeks after the others
    cycle_delay: float = 0.30      # per cycle: chemo delayed 3-10 days
    correction: float = 0.20       # per cycle: registered with one date, corrected before it starts
    late_registration: float = 0.03  # per cycle: registered only after its first day
    cancel_course: float = 0.015   # per cycle
    ack_never_emergency: float = 0.10  # coordinators who never acknowledge (the alert must escalate)
    ack_never_same_day: float = 0.15


@dataclass(frozen=True)
class FaultRates:
    """Infrastructure faults per clock step (Telegram) or per simulated day (database, crashes)."""

    telegram_per_step: float = 0.02
    kinds: tuple[tuple[str, float], ...] = (("server_error", 0.40), ("timeout_after_accept", 0.15),
                                             ("flood", 0.10), ("blocked", 0.15), ("chat_not_found", 0.05),
                                             ("refuse", 0.15))
    max_slow_faults: int = 30      # timeouts and 429s cost real seconds: capped per run
    db_drops_per_day: float = 0.4
    crashes: int = 4               # in-process crashes (Application abandoned mid-send, rebuilt from the database)


@dataclass(frozen=True)
class SimConfig:
    seed: int = DEFAULT_SEED
    patients: int = 149
    cycles: int = 4
    database: str = "sqlite"       # "sqlite", or a PostgreSQL server URL (a fresh database is created and dropped)
    behaviour: Behaviour = field(default_factory=Behaviour)
    faults: FaultRates = field(default_factory=FaultRates)
    second_worker: bool = True     # PostgreSQL: a second scheduler instance claims from the same outbox
    # Shrinking: only these patients (indices), and nothing planned after this many simulated days.
    subset: frozenset[int] | None = None
    max_days: int | None = None
    # A deliberately broken build, to prove the invariants bite: "no_resend_marker", "duplicate_dose_day".
    breaks: frozenset[str] = frozenset()
    keep_database: bool = False
    verbose: bool = False

    def with_(self, **changes) -> SimConfig:
        return replace(self, **changes)

    @property
    def indices(self) -> list[int]:
        return [i for i in range(self.patients) if self.subset is None or i in self.subset]

    def reproduce_command(self) -> str:
        parts = [f"adherence-bot simulate --seed {self.seed} --patients {self.patients} --cycles {self.cycles}"]
        if self.subset is not None:
            parts.append("--only " + ",".join(str(i) for i in sorted(self.subset)))
        if self.max_days is not None:
            parts.append(f"--days {self.max_days}")
        if self.breaks:
            parts.append("--break " + ",".join(sorted(self.breaks)))
        if self.database != "sqlite":
            parts.append("--database postgresql")
        return " ".join(parts)


def rng_for(seed: int, *what: object) -> random.Random:
    return random.Random(f"{seed}:" + ":".join(str(w) for w in what))


# --- the plan ------------------------------------------------------------------------------------------
@dataclass
class CyclePlan:
    cycle: int
    chemo_end: date           # the real chemotherapy end date
    registered_as: date       # the date the coordinator first registers (may be wrong)
    register_on: date         # site-local day of registration
    correct_on: date | None   # site-local day of the correction (re-anchor) to `chemo_end`
    cancel_on: date | None


@dataclass
class PatientPlan:
    index: int
    site: str
    tz: str
    locale: str
    language_code: str
    reminder_time: str
    enrol_on: date
    cycles: list[CyclePlan]
    time_change_on: date | None = None
    new_time: str | None = None
    self_pause: tuple[date, date] | None = None
    team_hold: tuple[date, date] | None = None
    withdraw_on: date | None = None
    rebind_on: date | None = None

    @property
    def user_id(self) -> int:
        return USER_BASE + self.index

    @property
    def subject_id(self) -> str:
        return f"{self.site}-{self.index + 1:03d}"


def plan_patient(config: SimConfig, index: int) -> PatientPlan:
    b = config.behaviour
    rng = rng_for(config.seed, "patient", index)
    site = SITES[index % 2]
    zh_site = site["id"] == "NJ"
    locale = "zh_Hans" if (rng.random() < 0.85) == zh_site else "en"
    language_code = "zh-hans" if locale == "zh_Hans" else rng.choice(["en", "en-GB", "de"])
    late = rng.random() < b.late_enrolment
    enrol_on = TRIAL_START + timedelta(days=rng.randint(18, 30) if late else rng.randint(0, 2))
    chemo_end = enrol_on + timedelta(days=rng.randint(1, 4))
    cycles = []
    for cycle in range(1, config.cycles + 1):
        if cycle > 1:
            chemo_end += timedelta(days=21 + (rng.randint(3, 10) if rng.random() < b.cycle_delay else 0))
        corrected = rng.random() < b.correction
        registered_as = chemo_end - timedelta(days=rng.randint(2, 5)) if corrected else chemo_end
        late_reg = rng.random() < b.late_registration and not corrected
        register_on = chemo_end + timedelta(days=2) if late_reg else \
            max(enrol_on, registered_as - timedelta(days=rng.randint(1, 4)))
        if cycle > 1:  # the previous course must be registered before the next one
            register_on = max(register_on, cycles[-1].register_on + timedelta(days=1))
        correct_on = registered_as if corrected else None  # the day the delay becomes known
        if correct_on is not None and correct_on <= register_on:
            correct_on = register_on + timedelta(days=0)
        cancel_on = register_on + timedelta(days=1) if rng.random() < b.cancel_course else None
        cycles.append(CyclePlan(cycle, chemo_end, registered_as, register_on, correct_on, cancel_on))
    plan = PatientPlan(index, site["id"], site["timezone"], locale, language_code, rng.choice(REMINDER_TIMES),
                       enrol_on, cycles)
    first, last = cycles[0].chemo_end + timedelta(days=1), cycles[-1].chemo_end + timedelta(days=14)
    span = (last - first).days

    def some_day(lo: float = 0.1, hi: float = 0.9) -> date:
        return first + timedelta(days=int(span * rng.uniform(lo, hi)))

    if rng.random() < b.time_change:
        plan.time_change_on, plan.new_time = some_day(), rng.choice([*REMINDER_TIMES, "07:30", "20:15"])
    if rng.random() < b.self_pause:
        start = some_day(0.1, 0.7)
        plan.self_pause = (start, start + timedelta(days=rng.randint(1, 4)))
    if rng.random() < b.team_hold:
        start = some_day(0.1, 0.7)
        plan.team_hold = (start, start + timedelta(days=rng.randint(2, 5)))
    if rng.random() < b.rebind:
        plan.rebind_on = some_day(0.2, 0.6)
    if rng.random() < b.withdraw:
        plan.withdraw_on = some_day(0.4, 0.8)
    return plan


def trial_end(plans: list[PatientPlan]) -> date:
    return max(c.chemo_end for p in plans for c in p.cycles) + timedelta(days=17)


def local_instant(day: date, hhmm: str, tz: str) -> datetime:
    hours, minutes = (int(x) for x in hhmm.split(":"))
    return datetime.combine(day, time(hours, minutes), ZoneInfo(tz)).astimezone(UTC)


def quantize(instant: datetime) -> datetime:
    """Round up to the people's 30-minute grid."""
    seconds = int(QUANTUM.total_seconds())
    stamp = int(instant.timestamp())
    return datetime.fromtimestamp(-(-stamp // seconds) * seconds, UTC)
