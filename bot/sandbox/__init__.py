"""A local fake of the Telegram Bot API for end-to-end tests of the bot.

Start a :class:`BotApiSandbox`, point a real ``telegram.Bot``/PTB ``Application`` at
``sandbox.base_url`` / ``sandbox.base_file_url`` with ``sandbox.token``, then act as users
(``sandbox.user(42).send_command("/start", "code")``, ``.press_button("Taken")``) and read what
the bot sent (``await sandbox.wait_for_messages(42, 1)``). Faults (blocked user, 429, lost
responses, dropped connections) are injected with :meth:`BotApiSandbox.inject_fault`.

Fidelity notes: HTML parse mode is validated and rendered to text + entities like Telegram
does; an edit without ``reply_markup`` removes the inline keyboard, as on Telegram; inline
callback_data is limited to 64 bytes. MarkdownV2 is passed through unparsed.
"""

from bot.sandbox.models import (FAULT_KINDS, RecordedCall, SandboxTimeout, SandboxUser,
                                SentMessage, parse_html)
from bot.sandbox.server import BotApiSandbox

__all__ = ["FAULT_KINDS", "BotApiSandbox", "RecordedCall", "SandboxTimeout", "SandboxUser",
           "SentMessage", "parse_html"]
