"""An OAuth request reads the server's settings once.

Serving one refresh consults the clock offset, the broken modes, the armed faults
and the grant-type restrictions a dozen times. Read one by one, each was its own
store transaction, and with SQLite those transactions were half of a request's
cost. Within an OAuth request the reads come from one snapshot taken at the first
of them instead.

Only reads are cached, and only for the request that took them. Every write opens
its own transaction on the store, and a decision that must see the latest value
(consuming an armed fault) reads again inside that transaction. Admin requests take
no snapshot: they write settings and answer with what they wrote.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Any

from .store import Store

__all__ = ["begin", "end", "read"]


class _Snapshot:
    def __init__(self, store: Store, names: tuple[str, ...]) -> None:
        self.store = store
        self.names = names
        self.values: dict[str, Any] | None = None

    def load(self) -> dict[str, Any]:
        if self.values is None:
            with self.store.transaction(write=False) as tx:
                self.values = {name: tx.get("settings", name) for name in self.names}
        return self.values


_current: ContextVar[_Snapshot | None] = ContextVar("rotcert_snapshot", default=None)


def begin(store: Store, names: tuple[str, ...]) -> Token:
    """Serve reads of these settings from one snapshot until end(token)."""
    return _current.set(_Snapshot(store, names))


def end(token: Token) -> None:
    _current.reset(token)


def read(store: Store, name: str) -> Any:
    """A setting's value (None when unset), from the snapshot when one covers it."""
    snapshot = _current.get()
    if snapshot is not None and snapshot.store is store and name in snapshot.names:
        return snapshot.load()[name]
    with store.transaction(write=False) as tx:
        return tx.get("settings", name)
