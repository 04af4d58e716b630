"""/report (the adherence chart for coordinators; the symptom picker for everyone else),
/export (a zip of CSV files), /digest (today's digest on demand), and the daily digest job."""

from __future__ import annotations

import asyncio
import logging
import os
import socket

from telegram import InputFile, Update
from telegram.error import TelegramError

from bot.channels.port import Account
from bot.domain.adherence import adherence, combine
from bot.handlers import symptoms
from bot.handlers.common import runtime
from bot.handlers.context import BotContext
from bot.handlers.coord_common import require_coordinator
from bot.render import coord_views as views
from bot.render import coordinator as render
from bot.render.coordinator import chat_translator
from bot.reports import csv_files
from bot.reports.chart import render_pages
from bot.services import digest, exports, patients
from bot.services.coord_access import refuse_actor
from bot.services.runtime import Runtime

log = logging.getLogger("adherence.coordinator")


def _sites(rt: Runtime, actor, requested: str | None) -> list[str]:
    return [s.id for s in rt.settings.sites if actor.may(s.id) and (requested is None or s.id == requested)]


async def report(update: Update, context: BotContext) -> None:
    """/report is the patient's symptom command; only a configured coordinator gets the chart."""
    rt = runtime(context)
    if rt.staff(Account.telegram(update.effective_user.id)) is None:
        await symptoms.start(update, context)
        return
    if not (found := await require_coordinator(update, context, "report")):
        return
    actor, t = found
    requested = context.args[0].upper() if context.args else None
    for site_id in _sites(rt, actor, requested):
        site = rt.settings.site(site_id)
        rows = await patients.overview(rt, actor, site_id=site_id)
        charted = views.chart_rows(rows)
        today = rt.now().astimezone(site.tz).date()
        pages = await asyncio.to_thread(render_pages, charted, columns=rt.settings.trial.course_days, t=t,
                                        site=site, day=today)
        live = [r for r in rows if r.status != "withdrawn"]
        totals = combine(r.so_far for r in live)
        current = combine(adherence(r.states) for r in live if r.cycle is not None)
        for number, page in enumerate(pages, start=1):
            caption = views.report_caption(t, site, totals=totals, current=current, patients=len(live),
                                           on_course=sum(r.status == "on_course" for r in live), page=number,
                                           pages=len(pages))
            if not charted:  # nothing to draw yet: the figures alone
                await update.effective_message.reply_text(caption)
                break
            await update.effective_message.reply_photo(page.png, caption=caption)


async def export(update: Update, context: BotContext) -> None:
    if not (found := await require_coordinator(update, context, "export")):
        return
    actor, t = found
    rt = runtime(context)
    requested = context.args[0].upper() if context.args else None
    if requested is not None and (not actor.may(requested) or requested not in {s.id for s in rt.settings.sites}):
        await refuse_actor(rt, actor, what="export", entity="site", entity_id=requested, update_id=update.update_id)
        await update.effective_message.reply_text(render.not_for_you(t))
        return
    if requested is None and actor.sites is not None:
        requested = actor.home_site
    data = await exports.collect(rt, actor, site_id=requested, update_id=update.update_id)
    name = rt.settings.site(requested).name(t.locale) if requested else t._("all sites")
    caption = views.export_caption(t, site_name=name, counts={k: len(v) for k, v in data.tables.items()})
    payload = await asyncio.to_thread(csv_files.zip_bytes, data)
    await update.effective_message.reply_document(InputFile(payload, filename=csv_files.zip_name(data)),
                                                  caption=caption, protect_content=False)


async def digest_now(update: Update, context: BotContext) -> None:
    """Today's digest on demand; it does not move the "since the last digest" mark."""
    if not (found := await require_coordinator(update, context, "digest")):
        return
    actor, t = found
    rt = runtime(context)
    requested = context.args[0].upper() if context.args else actor.home_site
    for site_id in _sites(rt, actor, requested):
        built = await digest.build(rt, site_id=site_id)
        for text in views.digest_text(t, rt.settings, built):
            await update.effective_message.reply_text(text)


async def send_site_digest(rt: Runtime, bot, *, site_id: str) -> int:
    """The scheduled digest for one site: claimed once per local day, sent to the site's alert
    chat or each coordinator, each in their own language. Returns the messages sent."""
    site = rt.settings.site(site_id)
    now = rt.now()
    if not await digest.claim(rt, site_id=site_id, local_date=now.astimezone(site.tz).date(),
                              owner=f"{socket.gethostname()}:{os.getpid()}"):
        return 0
    built = await digest.build(rt, site_id=site_id, now=now)
    await digest.mark_built(rt, site_id=site_id, at=now)
    sent = 0
    for chat_id in [recipient.chat_id for recipient in site.alert_chats()]:
        t = chat_translator(rt.settings, chat_id, site_id)
        for text in views.digest_text(t, rt.settings, built):
            try:
                await bot.send_message(chat_id, text)
                sent += 1
            except TelegramError as error:
                log.warning("event=digest_send_failed site=%s chat=%s error=%s", site_id, chat_id,
                            type(error).__name__)
    log.info("event=digest_sent site=%s messages=%d", site_id, sent)
    return sent


async def digest_job(context: BotContext) -> None:
    await send_site_digest(runtime(context), context.bot, site_id=context.job.data)
