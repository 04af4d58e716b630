"""What every coordinator handler needs: who is calling (checked on every update), their
language, refusals that are audited, and the one place service refusals become messages."""

from __future__ import annotations

import re
from datetime import date

from telegram import Update
from telegram.error import BadRequest

from bot.channels.telegram.keyboards import as_markup
from bot.channels.telegram.handlers.common import runtime, translator_for
from bot.channels.telegram.handlers.context import BotContext
from bot.channels.port import Account
from bot.i18n import Translator
from bot.render import coord_courses as course_views
from bot.render import coord_patients as patient_views
from bot.render import coordinator as render
from bot.services import dialogs
from bot.services.coord_access import Actor, NotFound, NotPermitted, coordinator_actor, refuse_stranger
from bot.services.courses import CourseRefused
from bot.services.invitations import InviteRefused
from bot.services.patients import PatientActionRefused

REFUSED = object()
_DATE = re.compile(r"\A(\d{4})[-/.]?(\d{1,2})[-/.]?(\d{1,2})\Z")


def coordinator_translator(context: BotContext, telegram_id: int) -> Translator:
    site, person = runtime(context).staff(Account.telegram(telegram_id))
    return Translator(person.locale, site.tz)


async def tell(update: Update, text: str, reply_markup=None) -> None:
    """Answer a command with a message, a button tap with a pop-up."""
    if update.callback_query is not None:
        await update.callback_query.answer(text[:190], show_alert=True)
    else:
        await update.effective_message.reply_text(text, reply_markup=as_markup(reply_markup))


async def require_coordinator(update: Update, context: BotContext,
                              what: str) -> tuple[Actor, Translator] | None:
    """The calling coordinator and their language, or None after a polite, audited refusal."""
    rt = runtime(context)
    user = update.effective_user
    actor = coordinator_actor(rt, Account.telegram(user.id))
    if actor is None:
        await refuse_stranger(rt, account=Account.telegram(user.id), what=what, update_id=update.update_id)
        t = translator_for(update, context, await context.patient())
        await tell(update, render.not_for_you(t))
        return None
    if update.callback_query is None:  # a new command (or the answer itself) ends any open question
        await dialogs.forget(rt, user=Account.telegram(user.id).key, kind=dialogs.COORDINATOR_QUESTION)
    return actor, coordinator_translator(context, user.id)


async def guarded(update: Update, t: Translator, subject: str | None, work, *, not_permitted: str | None = None):
    """Run a coordinator use case; turn its refusals into one message. Returns REFUSED if refused.
    `not_permitted`: what to say when the site is not the caller's (default: no such patient here)."""
    try:
        return await work()
    except NotPermitted:
        await tell(update, not_permitted or render.not_at_your_site(t, subject))
    except NotFound:
        await tell(update, render.not_at_your_site(t, subject))
    except CourseRefused as refused:
        await tell(update, course_views.course_refusal(t, refused.code))
    except PatientActionRefused as refused:
        await tell(update, patient_views.patient_refusal(t, refused.code))
    except InviteRefused as refused:
        if refused.code == "enrolled":
            await tell(update, t._("{subject} is already enrolled. For a new phone use /rebind {subject}.",
                                   subject=subject))
        elif refused.code == "bad_subject":
            await tell(update, render.bad_subject(t))
        else:
            await tell(update, t._("Unknown site."))
    return REFUSED


def example_subject(rt, actor: Actor) -> str:
    """A subject id to show in examples, with the coordinator's own site prefix."""
    return f"{actor.home_site or rt.settings.sites[0].id}-017"


def parse_date(raw: str | None) -> date | None:
    match = _DATE.match((raw or "").strip())
    if not match:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


async def set_pending(update: Update, context: BotContext, step: str, **values) -> None:
    """An open question (a reason, a date) for this coordinator's next text message, kept in the
    database; it lapses after a few minutes so a stray message later can never become a
    withdrawal reason."""
    await dialogs.remember(runtime(context), user=Account.telegram(update.effective_user.id).key,
                           kind=dialogs.COORDINATOR_QUESTION, payload={"step": step, **values},
                           ttl=dialogs.COORDINATOR_QUESTION_TTL)


async def take_pending(update: Update, context: BotContext) -> dict | None:
    """The open question, once; {"step": "lapsed"} if it was asked too long ago."""
    taken = await dialogs.take(runtime(context), user=Account.telegram(update.effective_user.id).key,
                               kind=dialogs.COORDINATOR_QUESTION)
    return {"step": "lapsed"} if taken.lapsed else taken.state


async def edit_quietly(query, text: str | None = None, reply_markup=None) -> None:
    """Edit the tapped message; "not modified" or a deleted message is not a problem."""
    try:
        if text is None:
            await query.edit_message_reply_markup(as_markup(reply_markup))
        else:
            await query.edit_message_text(text, reply_markup=as_markup(reply_markup))
    except BadRequest:
        pass
