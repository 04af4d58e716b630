"""Builders for the channel-neutral buttons the screens in `bot/render` return: rows of
`Action`s under a message, or a standing `Menu`. Each channel adapter draws them its own way
(Telegram: `bot.channels.telegram.keyboards`)."""

from __future__ import annotations

from collections.abc import Iterable

from bot.channels.port import Action, Actions, Menu


def buttons(rows: Iterable[Iterable[Action]]) -> Actions:
    return tuple(tuple(row) for row in rows)


def menu(rows: Iterable[Iterable[str]]) -> Menu:
    return Menu(tuple(tuple(row) for row in rows))
