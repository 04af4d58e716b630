"""Neutral actions → Telegram inline keyboards (the reverse, for screens `bot/render` still builds
as keyboards, is `bot.render.actions.actions_of`)."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.channels.port import Action


def keyboard(actions: tuple[tuple[Action, ...], ...]) -> InlineKeyboardMarkup | None:
    if not actions:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(a.label, callback_data=a.data, url=a.url) for a in row]
                                 for row in actions])

