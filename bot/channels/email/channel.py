"""Sending staff alerts by SMTP: one `OutgoingMessage` in, one `DeliveryResult` out.

One connection per mail (alerts are few; nothing to keep alive). SMTP's answers mapped onto the
port, with the same at-least-once-safe policy as Telegram (the courier applies it):
- the server accepted the message (250 after DATA) → `Sent` (a mail has no message id);
- 5xx for the recipient (RCPT: no such mailbox, relay refused) → `Refused` (recipient gone);
- 5xx for the message itself (DATA) → `Rejected` (failed, logged as an error);
- 4xx anywhere, connection refused, a timeout or drop before DATA, a 5xx before RCPT (login,
  sender; an operator can fix it) → `NotDelivered` (retried with backoff);
- a timeout or dropped connection after the message was handed over (DATA) → `Unknown`: the
  server may have taken it, so it is not resent blindly.
The password never appears in a result, a log line or an exception we raise.
"""

from __future__ import annotations

import logging
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import aiosmtplib

from bot.channels.port import (ChannelName, DeliveryResult, Dispatch, NotDelivered, OutgoingMessage, Recipient,
                               Refused, Rejected, Sent, Unknown)
from bot.config import EmailSettings

log = logging.getLogger("adherence.email")


class EmailChannel:
    name = ChannelName.EMAIL

    def __init__(self, settings: EmailSettings) -> None:
        self.settings = settings

    def _client(self) -> aiosmtplib.SMTP:
        s = self.settings
        password = s.password.get_secret_value()
        return aiosmtplib.SMTP(hostname=s.host, port=s.port, timeout=s.timeout_seconds, use_tls=s.tls == "tls",
                               start_tls=s.tls == "starttls", username=s.user or None,
                               password=password if s.user else None)

    def mail(self, recipient: Recipient, message: OutgoingMessage) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.settings.from_address
        mail["To"] = recipient.address
        mail["Subject"] = message.subject or message.text.split("\n", 1)[0][:120]
        mail["Date"] = formatdate(localtime=False)
        mail["Message-ID"] = make_msgid(domain=self.settings.from_address.rsplit("@", 1)[-1])
        mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to the bot
        mail.set_content(message.text)
        return mail

    async def deliver(self, recipient: Recipient, message: OutgoingMessage, dispatch: Dispatch) -> DeliveryResult:
        if message.edit_of is not None or message.copy_of is not None:
            return Rejected("a mail cannot be edited or relay a chat message")
        data = self.mail(recipient, message).as_bytes()
        smtp = self._client()
        await dispatch.dispatching()
        step = "connect"
        try:
            await smtp.connect()
            step = "sender"
            await smtp.mail(self.settings.from_address)
            step = "recipient"
            await smtp.rcpt(recipient.address)
            step = "data"
            await smtp.data(data)
        except aiosmtplib.SMTPResponseException as error:
            return _answer(step, error.code, error.message)
        except (aiosmtplib.SMTPException, OSError) as error:
            reason = f"{step}: {type(error).__name__}"
            return Unknown(f"no answer after the message was handed over ({reason})") if step == "data" \
                else NotDelivered(f"not delivered ({reason})")
        finally:
            await _close(smtp)
        return Sent(None)


def _answer(step: str, code: int, message: str) -> DeliveryResult:
    reason = f"{step}: {code} {message}"[:300]
    if 400 <= code < 500:
        return NotDelivered(f"not delivered ({reason})")
    if step == "recipient":
        return Refused(reason)
    if step == "data":
        return Rejected(reason)
    log.error("event=smtp_refused step=%s code=%s", step, code)  # login or sender: the operator must look
    return NotDelivered(f"not delivered ({reason})")


async def _close(smtp: aiosmtplib.SMTP) -> None:
    if not smtp.is_connected:
        return
    try:
        await smtp.quit()
    except (aiosmtplib.SMTPException, OSError):
        smtp.close()
