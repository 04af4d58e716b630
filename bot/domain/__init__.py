"""The pure domain: schedule, dose-day rules, adherence, triage and invitation tokens.

No I/O, no framework imports, no clock: `now` and `today` are always parameters
(tests/domain/test_purity.py keeps it that way).
"""

from bot.domain.adherence import Adherence, adherence, combine, consecutive_unanswered, marks
from bot.domain.dose import (
    Answer,
    DoseOutcome,
    DoseRuleError,
    DoseState,
    answer_dose,
    close_day,
    correct_dose,
    day_bounds,
    undo_missed,
)
from bot.domain.schedule import (
    CourseSpan,
    PlannedDose,
    ScheduleError,
    check_new_course,
    check_reanchor,
    course_day_number,
    course_span,
    local_day_start,
    local_due_instant,
    plan_course,
)
from bot.domain.tokens import (
    TOKEN_PATTERN,
    InvitationStatus,
    Throttle,
    hash_token,
    invitation_status,
    looks_like_token,
    new_token,
    throttle_allows,
    token_matches,
)
from bot.domain.triage import TriageLevel, UnknownSymptom, triage

__all__ = [
    "TOKEN_PATTERN",
    "Adherence",
    "Answer",
    "CourseSpan",
    "DoseOutcome",
    "DoseRuleError",
    "DoseState",
    "InvitationStatus",
    "PlannedDose",
    "ScheduleError",
    "Throttle",
    "TriageLevel",
    "UnknownSymptom",
    "adherence",
    "answer_dose",
    "check_new_course",
    "check_reanchor",
    "close_day",
    "combine",
    "consecutive_unanswered",
    "correct_dose",
    "course_day_number",
    "course_span",
    "day_bounds",
    "undo_missed",
    "hash_token",
    "invitation_status",
    "local_day_start",
    "local_due_instant",
    "looks_like_token",
    "marks",
    "new_token",
    "plan_course",
    "throttle_allows",
    "token_matches",
    "triage",
]
