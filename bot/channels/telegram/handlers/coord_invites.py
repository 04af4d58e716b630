"""/invite [subject-id] [site], /invites, the Revoke button, and /rebind <subject-id>."""

from __future__ import annotations

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler

from bot.channels.telegram.keyboards import as_markup
from bot.channels.telegram.handlers.common import runtime
from bot.channels.telegram.handlers.context import BotContext
from bot.channels.telegram.handlers.coord_common import REFUSED, edit_quietly, guarded, require_coordinator
from bot.render import callbacks as cb
from bot.render import coord_invitations as invitation_views
from bot.reports.qr import invitation_card_png
from bot.services import invitations, patients
from bot.services.coord_access import NotFound, NotPermitted


async def _send_link(update: Update, context: BotContext, t, issued, purpose: str) -> None:
    site = runtime(context).settings.site(issued.site_id)
    caption = invitation_views.invitation_caption(t, link=issued.link, subject_id=issued.subject_id, site=site,
                                       expires_at=issued.expires_at, purpose=purpose)
    card = invitation_card_png(issued.link, site=site, subject_id=issued.subject_id, expires_at=issued.expires_at)
    await update.effective_message.reply_photo(card, caption=caption,
                                               reply_markup=as_markup(invitation_views.invitation_keyboard(t, issued.invitation_id)))


async def invite(update: Update, context: BotContext) -> None:
    if not (found := await require_coordinator(update, context, "invite")):
        return
    actor, t = found
    subject = context.args[0] if context.args else None
    site = context.args[1].upper() if len(context.args) > 1 else None
    rt = runtime(context)
    wanted = invitations.site_for(rt, actor, subject, site)
    mine = ", ".join(s.id for s in rt.settings.sites if actor.may(s.id))
    issued = await guarded(update, t, subject, lambda: invitations.invite(
        rt, actor, subject_id=subject, site_id=site, update_id=update.update_id),
        not_permitted=t._("Site {site} is not yours, so you cannot invite patients there. Your site: {mine}.",
                          site=wanted, mine=mine))
    if issued is not REFUSED:
        await _send_link(update, context, t, issued, "enrol")


async def rebind(update: Update, context: BotContext, subject: str | None = None) -> None:
    if not (found := await require_coordinator(update, context, "rebind")):
        return
    actor, t = found
    subject = subject or (context.args[0] if context.args else None)
    issued = await guarded(update, t, subject, lambda: patients.rebind(
        runtime(context), actor, subject_id=subject or "", update_id=update.update_id))
    if issued is not REFUSED:
        if update.callback_query is not None:
            await update.callback_query.answer()
        await _send_link(update, context, t, issued, "rebind")


async def invites(update: Update, context: BotContext) -> None:
    if not (found := await require_coordinator(update, context, "invites")):
        return
    actor, t = found
    text, keyboard = invitation_views.invitations_list(t, await invitations.list_open(runtime(context), actor))
    await update.effective_message.reply_text(text, reply_markup=as_markup(keyboard))


async def on_revoke(update: Update, context: BotContext) -> None:
    invitation_id = int(context.match[1])
    if not (found := await require_coordinator(update, context, "revoke_invitation")):
        return
    actor, t = found
    rt = runtime(context)
    query = update.callback_query
    try:
        status = await invitations.revoke(rt, actor, invitation_id=invitation_id, update_id=update.update_id)
    except (NotFound, NotPermitted):
        await query.answer(t._("This button is not for you."), show_alert=True)
        return
    await query.answer(invitation_views.revoke_result(t, status), show_alert=True)
    if query.message is not None and query.message.photo:
        await edit_quietly(query, None, None)
    else:
        text, keyboard = invitation_views.invitations_list(t, await invitations.list_open(rt, actor))
        await edit_quietly(query, text, keyboard)


def handlers() -> list[BaseHandler]:
    return [CallbackQueryHandler(on_revoke, pattern=cb.pattern("iv", cb.ID))]
