"""A recording fake of the channel port for the service tier: the scheduler's courier delivers
to it as to Telegram or email, with no PTB and no sandbox. It records every `OutgoingMessage`
with its `Recipient` and what it answered, and can be told to answer `Refused`, `Unknown`,
`RetryAfter` or `NotDelivered` for the next n sends (to one recipient, or to anyone)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.channels.port import ChannelName, DeliveryResult, Dispatch, OutgoingMessage, Recipient, Sent


@dataclass(frozen=True)
class Delivery:
    recipient: Recipient
    message: OutgoingMessage
    result: DeliveryResult


@dataclass
class _Answer:
    result: DeliveryResult
    to: Recipient | None
    times: int | None  # None: every matching send from now on


class RecordingChannel:
    def __init__(self, name: str = ChannelName.TELEGRAM) -> None:
        self.name = name
        self.deliveries: list[Delivery] = []
        self._answers: list[_Answer] = []
        self._next_id = 1000

    def answer(self, result: DeliveryResult, *, times: int | None = 1, to: Recipient | None = None) -> None:
        """The next `times` sends (to `to`, else to anyone) answer `result` instead of `Sent`."""
        self._answers.append(_Answer(result, to, times))

    def clear(self) -> None:
        self._answers.clear()

    async def deliver(self, recipient: Recipient, message: OutgoingMessage, dispatch: Dispatch) -> DeliveryResult:
        await dispatch.dispatching()  # records the row as in flight, as a real adapter must
        result = self._scripted(recipient)
        if result is None:
            self._next_id += 1
            result = Sent(message_id=self._next_id)
        self.deliveries.append(Delivery(recipient, message, result))
        return result

    def _scripted(self, recipient: Recipient) -> DeliveryResult | None:
        for answer in self._answers:
            if answer.to is not None and answer.to != recipient:
                continue
            if answer.times is not None:
                answer.times -= 1
                if answer.times == 0:
                    self._answers.remove(answer)
            return answer.result
        return None

    def to(self, recipient: Recipient) -> list[Delivery]:
        """Every attempt to reach `recipient`, in order."""
        return [d for d in self.deliveries if d.recipient == recipient]

    def received(self, recipient: Recipient) -> list[OutgoingMessage]:
        """What `recipient` actually got (the sends answered `Sent`)."""
        return [d.message for d in self.to(recipient) if isinstance(d.result, Sent)]

    def messages(self, recipient: Recipient) -> list[OutgoingMessage]:
        """The separate messages `recipient`'s chat shows (edits of earlier ones are not new)."""
        return [m for m in self.received(recipient) if m.edit_of is None]
