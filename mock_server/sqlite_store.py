"""A SQLite store: survives a restart and serves several worker processes."""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .store import KINDS

__all__ = ["SQLiteStore"]

# WITHOUT ROWID: the (kind, key) key is the table itself, so a write touches one
# B-tree fewer; and events need no AUTOINCREMENT bookkeeping row per insert.
RECORDS_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    family TEXT,
    data TEXT NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_by_family ON records (kind, family);
"""
EVENTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    data TEXT NOT NULL
);
"""


class _SQLiteTransaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def get(self, kind: str, key: str) -> Any:
        row = self._db.execute(
            "SELECT data FROM records WHERE kind = ? AND key = ?", (kind, key)
        ).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, kind: str, key: str, value: Any, family: str | None = None) -> None:
        self._db.execute(
            "INSERT INTO records (kind, key, family, data) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (kind, key) DO UPDATE SET data = excluded.data, "
            "family = COALESCE(excluded.family, records.family)",
            (kind, key, family, json.dumps(value)),
        )

    def delete(self, kind: str, key: str) -> None:
        self._db.execute("DELETE FROM records WHERE kind = ? AND key = ?", (kind, key))

    def by_family(self, kind: str, family: str) -> list[Any]:
        rows = self._db.execute(
            "SELECT data FROM records WHERE kind = ? AND family = ? ORDER BY key",
            (kind, family),
        )
        return [json.loads(row[0]) for row in rows]

    def all(self, kind: str) -> list[Any]:
        rows = self._db.execute("SELECT data FROM records WHERE kind = ?", (kind,))
        return [json.loads(row[0]) for row in rows]


class _Database:
    """One SQLite file: a connection per thread and one writer at a time."""

    def __init__(self, path: str, schema: str) -> None:
        self.path = path
        self._local = threading.local()
        # Writers queue on these locks instead of in SQLite's busy handler, whose
        # growing sleeps put p99 in the hundreds of milliseconds: threads of one
        # process on a mutex, processes on a flock of a file beside the database,
        # whose waiters the kernel wakes as soon as it is released.
        self._writer = threading.Lock()
        self._lock_file: tuple[int, int] | None = None
        self.connection().executescript(schema)
        # Open the lock file now: a problem with it is a start-up error, not a 500
        # at the first write.
        self._lock_fd()

    def connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            # isolation_level=None: we issue BEGIN ourselves, so a writer takes the
            # database lock before its first read and rotations never interleave.
            db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=30000")
            self._local.db = db
        return db

    def _lock_fd(self) -> int:
        # A forked worker must open its own: a descriptor inherited across fork
        # shares its flock with the parent, which would then exclude no one.
        if self._lock_file is None or self._lock_file[0] != os.getpid():
            fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            self._lock_file = (os.getpid(), fd)
        return self._lock_file[1]

    @contextmanager
    def transaction(self, write: bool) -> Iterator[sqlite3.Connection]:
        db = self.connection()
        if db.in_transaction:
            # Nested on this thread (the clock reads its offset inside a rotation):
            # join the outer transaction, as the memory store's re-entrant lock
            # does. A second BEGIN would fail, and a second connection would wait
            # on our own write lock.
            yield db
            return
        if not write:
            db.execute("BEGIN")
            try:
                yield db
            finally:
                db.execute("COMMIT")
            return
        with self._writer:
            fd = self._lock_fd()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)


class SQLiteStore:
    """Records in one SQLite file, events in a second one beside it.

    Two files, two write locks: appending an event (once per request) no longer
    waits for another process's rotation, nor a rotation for an event. Together
    they were half of the time a worker held the only lock, and the event log needs
    no transaction with the records: it is written after the answer is known.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._records = _Database(self.path, RECORDS_SCHEMA)
        self._events = _Database(self.path + "-events", EVENTS_SCHEMA)

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[_SQLiteTransaction]:
        with self._records.transaction(write) as db:
            yield _SQLiteTransaction(db)

    def append_event(self, event: dict[str, Any]) -> int:
        with self._events.transaction(write=True) as db:
            cursor = db.execute(
                "INSERT INTO events (data) VALUES (?)", (json.dumps(event),)
            )
            return int(cursor.lastrowid)

    def events(self, since: int = 0) -> list[dict[str, Any]]:
        rows = self._events.connection().execute(
            "SELECT seq, data FROM events WHERE seq > ? ORDER BY seq", (since,)
        )
        return [{**json.loads(data), "seq": seq} for seq, data in rows]

    def clear(self, keep: tuple[str, ...] = ()) -> None:
        with self._records.transaction(write=True) as db:
            drop = [kind for kind in KINDS if kind not in keep]
            db.executemany("DELETE FROM records WHERE kind = ?", [(k,) for k in drop])
        with self._events.transaction(write=True) as db:
            # Numbering restarts at 1, as in the memory store: without AUTOINCREMENT
            # a new seq is one more than the highest left, and events are only ever
            # deleted all at once.
            db.execute("DELETE FROM events")
