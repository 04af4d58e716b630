"""The neutral form of the keyboards `bot/render` still builds in Telegram's shape, so the
scheduler composes channel-neutral messages without knowing Telegram."""

from __future__ import annotations

from bot.channels.port import Action


def actions_of(markup) -> tuple[tuple[Action, ...], ...]:
    """Rows of `Action`s from an inline keyboard (anything with `inline_keyboard` rows of buttons)."""
    if markup is None:
        return ()
    return tuple(tuple(Action(b.text, data=b.callback_data if isinstance(b.callback_data, str) else None,
                              url=b.url) for b in row) for row in markup.inline_keyboard)
