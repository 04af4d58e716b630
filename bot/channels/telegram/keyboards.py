"""Neutral buttons and menus → Telegram keyboards.

For the courier, the inline keyboard is built in the Bot API's own JSON shape, which PTB sends
as it is: building `InlineKeyboardMarkup` objects costs about ten times as much per message,
which shows in a fan-out of thousands of reminders. Handlers, which answer one person at a
time and compare keyboards with the message they edit, get PTB's objects (`as_markup`)."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, KeyboardButton, ReplyKeyboardMarkup, TelegramObject

from bot.channels.port import Action, Actions, Menu


def _button(action: Action) -> dict:
    return {"text": action.label, "url": action.url} if action.url else \
        {"text": action.label, "callback_data": action.data}


def keyboard(actions: Actions) -> dict | None:
    if not actions:
        return None
    return {"inline_keyboard": [[_button(a) for a in row] for row in actions]}


def as_markup(view: Actions | Menu | TelegramObject | None) -> TelegramObject | None:
    """The Telegram keyboard for a screen's buttons (inline, under the message) or menu (a
    persistent reply keyboard); None stays None (an edit without it removes the buttons)."""
    if view is None or isinstance(view, TelegramObject):
        return view
    if isinstance(view, Menu):
        return ReplyKeyboardMarkup([[KeyboardButton(label) for label in row] for row in view.rows],
                                   resize_keyboard=True, is_persistent=True)
    if not view:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(a.label, url=a.url) if a.url
                                  else InlineKeyboardButton(a.label, callback_data=a.data) for a in row]
                                 for row in view])
