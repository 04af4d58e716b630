"""Drop an update we have already handled (a webhook redelivery) before any handler sees it."""

from __future__ import annotations

from collections import OrderedDict

from telegram import Update
from telegram.ext import ApplicationHandlerStop, ContextTypes, TypeHandler

GROUP = -100  # runs before every other handler group


class SeenUpdates:
    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[int, None] = OrderedDict()

    def first_time(self, update_id: int) -> bool:
        if update_id in self._ids:
            return False
        self._ids[update_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True


def handler() -> TypeHandler:
    seen = SeenUpdates()

    async def drop_duplicates(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if not seen.first_time(update.update_id):
            raise ApplicationHandlerStop

    return TypeHandler(Update, drop_duplicates)
