"""Storage for clients, families, tokens, settings and events.

A store holds JSON values by (kind, key), optionally indexed by family. All of the
rotation state machine's reads and writes for one request happen inside one
``transaction()``, which is what makes rotation atomic: the in-memory store
serializes transactions with a lock, the SQLite store with ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

__all__ = ["Store", "Transaction", "MemoryStore", "KINDS"]

KINDS = ("client", "family", "refresh", "access", "code", "settings")


class Transaction(Protocol):
    def get(self, kind: str, key: str) -> Any: ...

    def put(self, kind: str, key: str, value: Any, family: str | None = None): ...

    def delete(self, kind: str, key: str) -> None: ...

    def by_family(self, kind: str, family: str) -> list[Any]: ...

    def all(self, kind: str) -> list[Any]: ...


class Store(Protocol):
    def transaction(self, write: bool = True) -> Any: ...

    def append_event(self, event: dict[str, Any]) -> int: ...

    def events(self, since: int = 0) -> list[dict[str, Any]]: ...

    def clear(self, keep: tuple[str, ...] = ()) -> None: ...


class _MemoryTransaction:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    def get(self, kind: str, key: str) -> Any:
        text = self._store._data[kind].get(key)
        return None if text is None else json.loads(text)

    def put(self, kind: str, key: str, value: Any, family: str | None = None) -> None:
        self._store._data[kind][key] = json.dumps(value)
        if family is not None:
            # A key belongs to one family at a time, as in the SQLite store's row.
            self._unindex(kind, key)
            self._store._families.setdefault((kind, family), set()).add(key)
            self._store._family_of[(kind, key)] = family

    def delete(self, kind: str, key: str) -> None:
        self._store._data[kind].pop(key, None)
        # Otherwise a later put of the key without a family would reappear in
        # by_family of the old one (the SQLite store drops the row and its family).
        self._unindex(kind, key)

    def _unindex(self, kind: str, key: str) -> None:
        family = self._store._family_of.pop((kind, key), None)
        if family is not None:
            self._store._families[(kind, family)].discard(key)

    def by_family(self, kind: str, family: str) -> list[Any]:
        keys = self._store._families.get((kind, family), set())
        data = self._store._data[kind]
        return [json.loads(data[k]) for k in sorted(keys) if k in data]

    def all(self, kind: str) -> list[Any]:
        return [json.loads(v) for v in self._store._data[kind].values()]


class MemoryStore:
    """Everything in one process's memory; the default.

    Values are kept as JSON text, as in the SQLite store: no caller can change
    stored state through a dict it put or got, both stores accept and return the
    same values, and encoding is several times cheaper than deep copies.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._data: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
        self._families: dict[tuple[str, str], set[str]] = {}
        self._family_of: dict[tuple[str, str], str] = {}
        self._events: list[str] = []

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[_MemoryTransaction]:
        with self._lock:
            yield _MemoryTransaction(self)

    def append_event(self, event: dict[str, Any]) -> int:
        with self._lock:
            seq = len(self._events) + 1
            self._events.append(json.dumps({**event, "seq": seq}))
            return seq

    def events(self, since: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(text) for text in self._events[since:]]

    def clear(self, keep: tuple[str, ...] = ()) -> None:
        with self._lock:
            for kind in KINDS:
                if kind not in keep:
                    self._data[kind].clear()
            self._families = {
                key: keys for key, keys in self._families.items() if key[0] in keep
            }
            self._family_of = {
                key: fam for key, fam in self._family_of.items() if key[0] in keep
            }
            self._events.clear()
