"""People behaving like people: what a patient or a coordinator does when a message arrives.

Each decision is drawn from a generator keyed by (seed, patient, local date) so the same
person decides the same way about the same day in every run of the seed."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sim.scenario import MISSED_REASONS, PatientPlan, SimConfig, rng_for

DOSE = re.compile(r"^d:(\d+):([tlm])$")
REASON = re.compile(r"^r:(\d+):")
ALERT = re.compile(r"^a:(\d+)$")


@dataclass
class DayPlan:
    kind: str                 # on_time | late_same_day | snooze | not_today | next_morning | never
    double_tap: bool = False
    snoozes: int = 0          # snoozes still wanted
    reason: str | None = None  # a missed reason to give, if any
    late_answer: str = "t"    # the answer to the next-morning question
    answered: bool = False


@dataclass
class Person:
    plan: PatientPlan
    user_id: int
    state: str = "planned"    # planned | active | withdrawn
    days: dict[int, DayPlan] = field(default_factory=dict)  # dose day id → decision
    course_ids: dict[int, int] = field(default_factory=dict)  # planned cycle → course id
    course_cycles: dict[int, int] = field(default_factory=dict)  # planned cycle → database cycle number
    old_user_ids: list[int] = field(default_factory=list)

    @property
    def index(self) -> int:
        return self.plan.index

    def local_date(self, instant: datetime) -> date:
        return instant.astimezone(ZoneInfo(self.plan.tz)).date()


def decide_day(config: SimConfig, person: Person, local: date) -> DayPlan:
    b = config.behaviour
    rng = rng_for(config.seed, "day", person.index, local.isoformat())
    kinds = [("on_time", b.on_time), ("late_same_day", b.late_same_day), ("snooze", b.snooze),
             ("not_today", b.not_today), ("next_morning", b.next_morning), ("never", b.never)]
    roll, kind = rng.random() * sum(w for _, w in kinds), kinds[-1][0]
    for name, weight in kinds:
        if roll < weight:
            kind = name
            break
        roll -= weight
    return DayPlan(kind=kind, double_tap=rng.random() < b.double_tap, snoozes=rng.randint(1, 3),
                   reason=rng.choice([*MISSED_REASONS, None]), late_answer="t" if rng.random() < 0.7 else "m")


def dose_buttons(datas: list[str]) -> tuple[int | None, set[str]]:
    """(dose day id, actions) of a dose prompt or next-morning question."""
    dose_id, actions = None, set()
    for data in datas:
        match = DOSE.match(data)
        if match:
            dose_id = int(match.group(1))
            actions.add(match.group(2))
    return dose_id, actions


def alert_id(datas: list[str]) -> int | None:
    for data in datas:
        match = ALERT.match(data)
        if match:
            return int(match.group(1))
    return None


def ack_delay(config: SimConfig, *, alert: int, level: str, escalation_contact: bool) -> timedelta | None:
    """How long a coordinator takes to acknowledge, or None for never."""
    b = config.behaviour
    rng = rng_for(config.seed, "ack", alert, escalation_contact)
    if escalation_contact:
        return timedelta(minutes=rng.choice([1, 5, 15, 30]))
    if level == "emergency":
        if rng.random() < b.ack_never_emergency:
            return None
        return timedelta(minutes=rng.choice([0, 1, 2, 3, 4, 8, 12]))
    if level == "same_day":
        if rng.random() < b.ack_never_same_day:
            return None
        return timedelta(minutes=rng.choice([15, 30, 60, 120, 240]))
    return timedelta(minutes=rng.choice([15, 60, 240, 600]))


FREE_TEXTS_ZH = ("今天有点头晕", "我忘了昨天有没有吃药", "药快吃完了", "医生说下周再化疗", "胃不舒服")
FREE_TEXTS_EN = ("I feel dizzy today", "not sure if I took it yesterday", "running low on tablets",
                 "my doctor moved the chemo", "stomach upset this morning")


def free_text(config: SimConfig, person: Person, serial: int) -> str:
    """A patient's own words, with a unique tag so a leak into the logs is unmistakable."""
    rng = rng_for(config.seed, "text", person.index, serial)
    pool = FREE_TEXTS_ZH if person.plan.locale == "zh_Hans" else FREE_TEXTS_EN
    return f"{rng.choice(pool)} ({'记号' if person.plan.locale == 'zh_Hans' else 'ref'} q{rng.randrange(10**6):06d}x)"
