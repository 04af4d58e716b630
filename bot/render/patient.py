"""What patients read. Short lines, big obvious buttons, nothing to type. The medication is
always the neutral configured name: no wording differs by study arm."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from bot.channels.port import Action, Actions, Menu
from bot.render.actions import buttons, menu
from bot.config import Settings, Site
from bot.db.models import Course, DoseDay
from bot.domain.adherence import Adherence, marks
from bot.domain.dose import DoseState
from bot.domain.triage import TriageLevel
from bot.i18n import Translator
from bot.render import callbacks as cb

Rendered = tuple[str, Actions | None]


def _hours(value: float) -> str:
    return f"{value:g}"


def medication(t: Translator, settings: Settings) -> str:
    return settings.medication.name(t.locale)


def fasting_line(t: Translator, settings: Settings) -> str:
    m = settings.medication
    return t._("Take it on an empty stomach: no food {before} h before or {after} h after.",
               before=_hours(m.fast_before_hours), after=_hours(m.fast_after_hours))


def dose_buttons(t: Translator, dose: DoseDay) -> Actions:
    return buttons([
        [Action(t._("✅ Taken"), data=cb.dose(dose.id, cb.TAKEN))],
        [Action(t._("⏰ Remind me later"), data=cb.dose(dose.id, cb.LATER)),
         Action(t._("✖ Not today"), data=cb.dose(dose.id, cb.MISSED))],
        [Action(t._("⚠ Report a symptom"), data=cb.menu("report"))],
    ])


def reminder(t: Translator, settings: Settings, dose: DoseDay, *, follow_up: bool = False) -> Rendered:
    head = t._("Day {day} of {total}", day=dose.day, total=settings.trial.course_days)
    what = t._("Time for your {medication}, {dose}.", medication=medication(t, settings), dose=settings.medication.dose_text)
    if follow_up:
        what = t._("Reminder: have you taken today's {medication}?", medication=medication(t, settings))
    return f"💊 {head}\n{what}\n{fasting_line(t, settings)}", dose_buttons(t, dose)


def taken_confirmation(t: Translator, settings: Settings, dose: DoseDay) -> Rendered:
    head = t._("Day {day} of {total}", day=dose.day, total=settings.trial.course_days)
    lines = [f"✅ {head}", t._("Taken, recorded at {time}. Thank you.", time=t.time(dose.answered_at))]
    if dose.late:
        lines = [f"✅ {head}", t._("Recorded as taken (reported late, at {when}).", when=t.datetime(dose.answered_at))]
    elif settings.medication.show_eat_after_note:
        eat_after = dose.answered_at + timedelta(hours=settings.medication.fast_after_hours)
        minerals_after = dose.answered_at + timedelta(hours=settings.medication.minerals_after_hours)
        lines.append(t._("You may eat after {time}.", time=t.time(eat_after)))
        lines.append(t._("No milk or dairy, antacids, or calcium, iron, magnesium or zinc supplements "
                         "before {time}.", time=t.time(minerals_after)))
    return "\n".join(lines), None


def missed_confirmation(t: Translator, settings: Settings, dose: DoseDay) -> Rendered:
    head = t._("Day {day} of {total}", day=dose.day, total=settings.trial.course_days)
    text = "\n".join([
        f"✖ {head}",
        t._("Recorded: not taken."),
        t._("Do not take two doses to make up for it. Take the next dose at the usual time on the next course day."),
    ])
    undo = [Action(t._("↩ Undo: I will take it today"), data=cb.dose(dose.id, cb.UNDO))] \
        if dose.source == "button" and not dose.late else None
    if dose.missed_reason or dose.late:
        return text, buttons([undo]) if undo else None
    reasons = [("forgot", t._("Forgot")), ("side_effects", t._("Side effects")), ("ran_out", t._("Ran out")),
               ("doctor", t._("Doctor said stop")), ("other", t._("Other"))]
    rows = [[Action(label, data=cb.missed_reason(dose.id, code))] for code, label in reasons]
    return text + "\n\n" + t._("If you like, tell us why (optional):"), buttons(rows + ([undo] if undo else []))


def late_question(t: Translator, settings: Settings, dose: DoseDay) -> Rendered:
    text = t._("We did not hear from you yesterday ({date}). Did you take your {medication} that day?",
               date=t.date(dose.local_date), medication=medication(t, settings))
    note = t._("Either answer is fine. Do not take an extra dose today.")
    keyboard = buttons([[Action(t._("Yes, I took it"), data=cb.dose(dose.id, cb.LATE_TAKEN)),
                          Action(t._("No, I did not"), data=cb.dose(dose.id, cb.LATE_MISSED))]])
    return f"{text}\n{note}", keyboard


def closed_reminder(t: Translator, settings: Settings, dose: DoseDay) -> Rendered:
    """A day's reminder once the day is over: its final state, no buttons."""
    head = t._("Day {day} of {total}", day=dose.day, total=settings.trial.course_days)
    if dose.state == DoseState.TAKEN:
        return taken_confirmation(t, settings, dose)[0], None
    if dose.state == DoseState.MISSED:
        return f"✖ {head}\n" + t._("Recorded: not taken."), None
    if dose.state == DoseState.CANCELLED:
        return f"{head}\n" + t._("This course was cancelled by your study team. No need to take the tablets "
                                 "for this day."), None
    return f"{head}\n" + t._("This day is over: {state}.", state=state_label(t, dose.state)), None


def catch_up_question(t: Translator, settings: Settings, days: list[DoseDay], *, answered: bool = False) -> Rendered:
    """One optional question about course days that were over before the course was registered."""
    if not days:
        return t._("Thank you. Your answers are saved."), None
    text = "\n".join([
        t._("Your study team registered this course after it had begun."),
        t._("On which of these days did you take your {medication}? Tap each one.",
            medication=medication(t, settings)),
        t._("If you did not take them, you need not do anything."),
    ])
    if answered:
        text = t._("Saved. Any other day?") + "\n" + text
    rows = [[Action("✅ " + t._("Day {day}: {date}", day=d.day, date=t.date(d.local_date)),
                    data=cb.dose(d.id, cb.CATCH_UP_TAKEN))] for d in days]
    return text, buttons(rows)


def cancelled_course(t: Translator, settings: Settings, course: Course) -> Rendered:
    return "\n".join([
        t._("Your study team has cancelled cycle {cycle} ({first} – {last}).", cycle=course.cycle,
            first=t.date(course.first_day), last=t.date(course.last_day)),
        t._("You will get no more reminders for it. Please do not take the {medication} for these days unless "
            "your study team tells you to.", medication=medication(t, settings)),
    ]), None


def how_to_take(t: Translator, settings: Settings) -> str:
    m = settings.medication
    return "\n".join([
        t._("How to take it:"),
        "• " + t._("Once a day, {dose}, with water, on an empty stomach.", dose=m.dose_text),
        "• " + t._("No food for {before} h before and {after} h after the dose.", before=_hours(m.fast_before_hours),
                   after=_hours(m.fast_after_hours)),
        "• " + t._("No milk or dairy, antacids, or calcium, iron, magnesium, aluminium, selenium or zinc supplements "
                   "for {hours} h after the dose.", hours=_hours(m.minerals_after_hours)),
        t._("If you miss a dose: skip it, never take two at once, and take the next one at the usual time."),
    ])


def course_plan(t: Translator, settings: Settings, course: Course, reminder_time: str,
                was: dict | None = None) -> Rendered:
    """The plan; after a correction (`was`: the old first and last day) it says what changed first."""
    changed = []
    if was:
        old_first, old_last = date.fromisoformat(was["first_day"]), date.fromisoformat(was["last_day"])
        changed = ["📅 " + t._("Your study team changed the dates of cycle {cycle}.", cycle=course.cycle),
                   t._("Before: {first} – {last}", first=t.date(old_first), last=t.date(old_last)),
                   t._("Now: {first} – {last}", first=t.date(course.first_day), last=t.date(course.last_day)),
                   t._("Please follow the new dates."), ""]
    text = "\n".join(changed + [
        t._("Cycle {cycle}: your {medication} course", cycle=course.cycle, medication=medication(t, settings)),
        t._("First dose: {date}", date=t.date(course.first_day)),
        t._("Last dose: {date}", date=t.date(course.last_day)),
        t._("Daily reminder at {time}.", time=reminder_time),
        "",
        how_to_take(t, settings),
    ])
    return text, None


def course_end(t: Translator, settings: Settings, course: Course, counts: Adherence) -> Rendered:
    text = "\n".join([
        t._("Cycle {cycle} course finished.", cycle=course.cycle),
        t._("You took {taken} of {total} doses.", taken=counts.taken, total=settings.trial.course_days),
        t._("Thank you. Your study team will register your next cycle after your next chemotherapy; "
            "you will get a new plan then."),
    ])
    return text, None


def status(t: Translator, settings: Settings, *, course: Course | None, doses: list[DoseDay], today,
           next_due: datetime | None, paused: bool, held: bool = False) -> Rendered:
    if course is None:
        return t._("No course is planned yet. Your study team will register it after your chemotherapy."), None
    states = [DoseState(d.state) for d in doses if not d.out_of_window]
    lines = [t._("Cycle {cycle}: {first} – {last}", cycle=course.cycle, first=t.date(course.first_day),
                 last=t.date(course.last_day)), marks(states),
             t._("✓ taken  ✗ not taken  ? no answer  · to come")]
    today_dose = next((d for d in doses if d.local_date == today and d.state != DoseState.CANCELLED), None)
    if today_dose is not None:
        lines.append(t._("Today (day {day}): {state}", day=today_dose.day, state=state_label(t, today_dose.state)))
    if held:
        lines.append(t._("Your study team has paused your {medication}. Please contact them before taking it.",
                         medication=medication(t, settings)))
    elif paused:
        lines.append(t._("Reminders are paused. Send /start to ask your study team to resume them."))
    elif next_due is not None:
        lines.append(t._("Next reminder: {when}", when=t.datetime(next_due)))
    return "\n".join(lines), None


def state_label(t: Translator, state: str) -> str:
    return {
        "scheduled": t._("waiting for your answer"),
        "taken": t._("taken"),
        "missed": t._("not taken"),
        "not_reported": t._("no answer"),
        "held": t._("on hold by your study team"),
        "before_registration": t._("before the course was registered"),
        "cancelled": t._("cancelled"),
    }[state]


def main_menu(t: Translator) -> Menu:
    """Always-visible big buttons under the text box."""
    return menu([[t._("⚠ Report a symptom")], [t._("📋 My status"), t._("💉 Chemo finished today")]])


def team_hold(t: Translator, settings: Settings, site: Site) -> str:
    return "\n".join([
        t._("Your study team has paused your {medication}. Only they can restart it.",
            medication=medication(t, settings)),
        t._("Please call your study team: {phone}", phone=site.phone),
        t._("Nothing was changed."),
    ])


def site_phones(t: Translator, sites: Site | list[Site]) -> str:
    """The site's phone; every site's when we cannot tell which is the patient's."""
    sites = [sites] if isinstance(sites, Site) else sites
    if len(sites) == 1:
        return t._("Study site phone: {phone}", phone=sites[0].phone)
    return t._("Study site phones: {phones}", phones="; ".join(f"{s.name(t.locale)} {s.phone}" for s in sites))


def emergency_advice(t: Translator, sites: Site | list[Site]) -> str:
    return "\n".join([
        "🚨 " + t._("Call 120 now, or go to the nearest emergency department."),
        t._("Do not wait for the study team's reply."),
        site_phones(t, sites),
    ])


def when_team_reads(t: Translator, relayed) -> str:
    """When a person reads what the patient sent: now (working hours), later today, or a later day."""
    if relayed.seen_from <= relayed.received_at:
        return t._("They read messages during working hours.")
    if relayed.seen_today:
        return t._("Your study team will read it from {time} today.", time=t.time(relayed.seen_from))
    return t._("Your study team will read it on {day} from {time}.", day=t.date(relayed.seen_from),
               time=t.time(relayed.seen_from))


def relay_answer(t: Translator, level: TriageLevel | None, relayed, sites) -> str:
    """The answer to a patient's free text or media: whether it reached the team, when a person
    will read it, and what to do if it is urgent."""
    phones = site_phones(t, sites)
    if relayed is None:
        return "\n".join(["❗ " + t._("Your message was NOT received because of a technical problem."),
                          t._("If it is urgent, call 120 now."), phones])
    if not relayed.team_reached:
        return "\n".join(["❗ " + t._("Your message was saved, but we could not reach your study team. "
                                     "Please phone them now."), t._("If it is urgent, call 120 now."), phones])
    lines = [t._("Your message was passed to your study team.")]
    if level is TriageLevel.EMERGENCY:
        lines.append(t._("Call 120 now, or go to the nearest emergency department."))
    elif level is TriageLevel.SAME_DAY:
        lines.append(t._("Your study team will contact you today.") if relayed.seen_today else
                     t._("Your study team will contact you on {day}.", day=t.date(relayed.seen_from)))
        lines.append(t._("If it gets worse, call 120 or phone the site."))
    else:
        lines += [when_team_reads(t, relayed), t._("If it is urgent, call 120 or phone the site.")]
    lines.append(phones)
    if level is not None:
        lines.append(t._("You can also tap the button below to report a symptom."))
    return "\n".join(lines)


def staff_reply(t: Translator, text: str) -> str:
    return "💬 " + t._("Message from your study team:") + "\n" + text


def chemo_end_question(t: Translator, settings: Settings, today) -> Rendered:
    """Before anything is created: the 14 days the patient's report would plan."""
    first = today + timedelta(days=settings.trial.start_offset_days)
    last = first + timedelta(days=settings.trial.course_days - 1)
    text = "\n".join([t._("Did your chemotherapy for this cycle finish today ({date})?", date=t.date(today)),
                      t._("Then your {medication} course would be {days} days: {first} to {last}.",
                          medication=medication(t, settings), days=settings.trial.course_days,
                          first=t.date(first), last=t.date(last)),
                      t._("Your study team will confirm it.")])
    keyboard = buttons([[Action(t._("Yes, it finished today"), data=cb.menu(f"chemo.{today:%Y%m%d}")),
                          Action(t._("No"), data=cb.menu("chemo_no"))]])
    return text, keyboard
