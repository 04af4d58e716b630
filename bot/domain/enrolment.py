"""The enrolment dialog as a state machine: language → consent → time → confirm.

Each step is accepted only when the dialog is at that step, so a crafted or stale callback can
never skip the consent. Pure: the caller loads the current step, applies one input, saves the
next step (bot.services.enrolment keeps it in the database).
"""

from __future__ import annotations

from enum import StrEnum


class EnrolStep(StrEnum):
    LANGUAGE = "language"
    CONSENT = "consent"
    TIME = "time"
    CONFIRM = "confirm"
    DONE = "done"
    DECLINED = "declined"


class EnrolInput(StrEnum):
    """What the patient sent, by the step it belongs to."""

    LANGUAGE = "lang"
    CONSENT = "consent"
    TIME = "time"
    CONFIRM = "confirm"
    CHANGE = "change"  # from the summary: go back to the language or the time step


class StepRefused(ValueError):
    """An input that does not belong to the dialog's current step; `code` is stable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


_EXPECTS = {
    EnrolStep.LANGUAGE: EnrolInput.LANGUAGE,
    EnrolStep.CONSENT: EnrolInput.CONSENT,
    EnrolStep.TIME: EnrolInput.TIME,
    EnrolStep.CONFIRM: EnrolInput.CONFIRM,
}


def next_step(current: EnrolStep | str | None, received: EnrolInput | str, value: str) -> EnrolStep:
    """The step after `received` at `current`. Refuses anything out of order (`out_of_order`),
    any input without a dialog (`expired`) and malformed values (`invalid`). At the confirm step
    a new time may still be chosen (the summary is shown again), and "change" goes back: to the
    time step, or to the language step (the consent is then asked again, in the new language)."""
    if current is None:
        raise StepRefused("expired", "no enrolment dialog in progress")
    current = EnrolStep(current)
    try:
        received = EnrolInput(received)
    except ValueError:
        raise StepRefused("invalid", f"unknown enrolment input {received!r}") from None
    allowed = _EXPECTS.get(current)
    if received in (EnrolInput.TIME, EnrolInput.CHANGE) and current is EnrolStep.CONFIRM:
        allowed = received
    if received is not allowed:
        raise StepRefused("out_of_order", f"{received.value} is not accepted at step {current.value}")
    if not value:
        raise StepRefused("invalid", f"{received.value} needs a value")
    if received is EnrolInput.LANGUAGE:
        return EnrolStep.CONSENT
    if received is EnrolInput.CONSENT:
        if value not in ("yes", "no"):
            raise StepRefused("invalid", f"consent must be yes or no, got {value!r}")
        return EnrolStep.TIME if value == "yes" else EnrolStep.DECLINED
    if received is EnrolInput.TIME:
        return EnrolStep.CONFIRM
    if received is EnrolInput.CHANGE:
        if value not in ("time", "lang"):
            raise StepRefused("invalid", f"change must be time or lang, got {value!r}")
        return EnrolStep.TIME if value == "time" else EnrolStep.LANGUAGE
    if value != "yes":
        raise StepRefused("invalid", f"confirm must be yes, got {value!r}")
    return EnrolStep.DONE


__all__ = ["EnrolInput", "EnrolStep", "StepRefused", "next_step"]
