"""/report (the adherence chart for coordinators; the symptom picker for everyone else),
/export (a zip of CSV files), /digest (today's digest on demand; the morning digest is queued by
the scheduler, `scheduler/digests.py`)."""

from __future__ import annotations

import asyncio

from telegram import InputFile, Update

from bot.channels.port import Account
from bot.domain.adherence import adherence, combine
from bot.channels.telegram.handlers import symptoms
from bot.channels.telegram.handlers.common import runtime
from bot.channels.telegram.handlers.context import BotContext
from bot.channels.telegram.handlers.coord_common import require_coordinator
from bot.render import coord_reports as report_views
from bot.render import coordinator as render
from bot.reports import csv_files
from bot.reports.chart import render_pages
from bot.services import digest, exports, patients
from bot.services.coord_access import refuse_actor
from bot.services.runtime import Runtime


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
        charted = report_views.chart_rows(rows)
        today = rt.now().astimezone(site.tz).date()
        pages = await asyncio.to_thread(render_pages, charted, columns=rt.settings.trial.course_days, t=t,
                                        site=site, day=today)
        live = [r for r in rows if r.status != "withdrawn"]
        totals = combine(r.so_far for r in live)
        current = combine(adherence(r.states) for r in live if r.cycle is not None)
        for number, page in enumerate(pages, start=1):
            caption = report_views.report_caption(t, site, totals=totals, current=current, patients=len(live),
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
    caption = report_views.export_caption(t, site_name=name, counts={k: len(v) for k, v in data.tables.items()})
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
        for text in report_views.digest_text(t, rt.settings, built):
            await update.effective_message.reply_text(text)
