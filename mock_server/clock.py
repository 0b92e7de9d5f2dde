"""The server's only source of "now".

Wall time is read through ``time.time`` at every call, so freezegun moves the clock of
an in-process server; an offset kept in the store moves it for an out-of-process
server (the admin API), and all worker processes sharing a SQLite store agree on it.
"""

from __future__ import annotations

import math
import time

from . import snapshot
from .store import Store

__all__ = ["Clock", "OffsetOutOfRange"]

OFFSET_SETTING = "clock_offset_seconds"


class OffsetOutOfRange(ValueError):
    """A move would take the offset past its bound; nothing was changed."""


class Clock:
    def __init__(self, store: Store) -> None:
        self._store = store

    def now(self) -> float:
        return time.time() + self.offset()

    def offset(self) -> float:
        return float(snapshot.read(self._store, OFFSET_SETTING) or 0.0)

    def advance(self, seconds: float, bound: float = math.inf) -> float:
        """Move the clock forward (or back) and return the new offset.

        The bound is checked in the same transaction as the write: two workers
        advancing at once must not both pass a check made before either wrote.
        """
        with self._store.transaction() as tx:
            offset = float(tx.get("settings", OFFSET_SETTING) or 0.0) + seconds
            if abs(offset) > bound:
                raise OffsetOutOfRange(
                    f"The clock offset would be {offset:g} s; allowed: "
                    f"{-bound:g} to {bound:g}."
                )
            tx.put("settings", OFFSET_SETTING, offset)
        return offset

    def set_offset(self, seconds: float) -> None:
        with self._store.transaction() as tx:
            tx.put("settings", OFFSET_SETTING, float(seconds))
