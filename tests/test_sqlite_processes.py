"""Atomic rotation across real processes sharing one SQLite file."""

from __future__ import annotations

import multiprocessing
from typing import Any

from mock_server import MockServer, SQLiteStore
from mock_server.errors import InvalidGrant

PROCESSES = 4
ROUNDS = 5

# Set in each worker process by _open_worker.
_worker: dict[str, Any] = {}


def _open_worker(path: str, barrier: Any) -> None:
    """Pool initializer: every worker process opens its own store on the file."""
    _worker["server"] = MockServer(store=SQLiteStore(path))
    _worker["barrier"] = barrier


def _refresh(token: str) -> tuple[str, str]:
    server: MockServer = _worker["server"]
    client = server.client(server.credentials["main"].client_id)
    # All four wait here, so the refreshes really race; a worker cannot take a
    # second task of the round before the barrier opens.
    _worker["barrier"].wait(timeout=30)
    try:
        tokens = server.authority.refresh(client, token, None)
    except InvalidGrant as exc:
        return "invalid_grant", exc.reason
    return "rotated", tokens.outcome


def test_processes_racing_on_one_token_get_one_successor(tmp_path):
    """DESIGN atomic rotation / K24: 4 processes, one token, exactly one success."""
    path = str(tmp_path / "shared.db")
    server = MockServer(store=SQLiteStore(path))
    client = server.client(server.credentials["main"].client_id)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)

    outcomes = []
    with context.Pool(PROCESSES, _open_worker, (path, barrier)) as pool:
        for _ in range(ROUNDS):
            token = server.authority.start_grant(client, "u", ["all-apis"])
            results = pool.map(_refresh, [token.refresh_token] * PROCESSES, 1)
            outcomes.append(sorted(kind for kind, _ in results))
            reasons = {reason for kind, reason in results if kind == "invalid_grant"}
            assert reasons <= {"reuse_detected", "family_revoked"}

    assert outcomes == [["invalid_grant"] * (PROCESSES - 1) + ["rotated"]] * ROUNDS
