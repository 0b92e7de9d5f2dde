"""The server's only source of "now".

Wall time is read through ``time.time`` at every call, so freezegun moves the clock of
an in-process server; an offset kept in the store moves it for an out-of-process
server (the admin API), and all worker processes sharing a SQLite store agree on it.
"""

from __future__ import annotations

import time

from .store import Store

__all__ = ["Clock"]

OFFSET_SETTING = "clock_offset_seconds"


class Clock:
    def __init__(self, store: Store) -> None:
        self._store = store

    def now(self) -> float:
        return time.time() + self.offset()

    def offset(self) -> float:
        with self._store.transaction(write=False) as tx:
            return float(tx.get("settings", OFFSET_SETTING) or 0.0)

    def advance(self, seconds: float) -> float:
        """Move the clock forward (or back) and return the new offset."""
        with self._store.transaction() as tx:
            offset = float(tx.get("settings", OFFSET_SETTING) or 0.0) + seconds
            tx.put("settings", OFFSET_SETTING, offset)
        return offset

    def set_offset(self, seconds: float) -> None:
        with self._store.transaction() as tx:
            tx.put("settings", OFFSET_SETTING, float(seconds))
