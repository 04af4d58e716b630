"""Neutral actions → Telegram inline keyboards (the reverse, for screens `bot/render` still builds
as keyboards, is `bot.render.actions.actions_of`).

The keyboard is built in the Bot API's own JSON shape, which PTB sends as it is: building
`InlineKeyboardMarkup` objects costs about ten times as much per message, which shows in a
fan-out of thousands of reminders."""

from __future__ import annotations

from bot.channels.port import Action


def _button(action: Action) -> dict:
    return {"text": action.label, "url": action.url} if action.url else \
        {"text": action.label, "callback_data": action.data}


def keyboard(actions: tuple[tuple[Action, ...], ...]) -> dict | None:
    if not actions:
        return None
    return {"inline_keyboard": [[_button(a) for a in row] for row in actions]}
