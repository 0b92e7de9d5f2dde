"""Parallel refreshes of one token over real HTTP (waitress on loopback).

DESIGN: rotation is atomic, so under any concurrency one presented token yields at
most one successor. Sixteen threads line up on a barrier and present the same token
at once; exactly one may win.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from http_helpers import make_server, mint

from mock_server import MemoryStore, MockServer, SQLiteStore
from mock_server.serve import start_in_thread

THREADS = 16
ROUNDS = 12


@pytest.fixture(params=["memory", "sqlite"])
def served(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, MockServer]]:
    """The mock on a waitress server in this process, on a free loopback port."""
    store = (
        MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "r.db")
    )
    mock = make_server(store=store)
    base_url, stop = start_in_thread(mock, threads=THREADS)
    yield base_url, mock
    stop()


def race(base_url: str, mock: MockServer, token: str) -> list[tuple[int, str | None]]:
    """Present ``token`` from THREADS threads at once; (status, error) each."""
    made = mock.credentials["main"]
    barrier = threading.Barrier(THREADS)
    results: list[tuple[int, str | None]] = []
    lock = threading.Lock()

    def attempt() -> None:
        with requests.Session() as session:
            barrier.wait(timeout=10)
            response = session.post(
                base_url + "/token",
                data={"grant_type": "refresh_token", "refresh_token": token},
                auth=(made.client_id, made.client_secret or ""),
                timeout=30,
            )
        error = None if response.status_code == 200 else response.json().get("error")
        with lock:
            results.append((response.status_code, error))

    workers = [threading.Thread(target=attempt) for _ in range(THREADS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert len(results) == THREADS, "a worker did not finish"
    return results


def test_parallel_refreshes_of_one_token_have_one_winner(served):
    """STD-RT-33/34: of 16 parallel refreshes exactly one wins, none is 5xx."""
    base_url, mock = served

    for round_number in range(ROUNDS):
        results = race(base_url, mock, mint(mock).refresh_token)

        statuses = sorted(status for status, _ in results)
        assert all(status < 500 for status in statuses), (round_number, statuses)
        assert statuses.count(200) == 1, (round_number, statuses)
        losers = [r for r in results if r[0] != 200]
        assert set(losers) == {(400, "invalid_grant")}, (round_number, losers)

    token_events = [e for e in mock.store.events() if e["endpoint"] == "token"]
    assert len(token_events) == ROUNDS * THREADS
    assert sum(e["outcome"] == "rotated" for e in token_events if "outcome" in e) == (
        ROUNDS
    )


def test_non_atomic_rotation_is_caught(served):
    """STD-RT-33/34 mutation: non_atomic_rotation lets two refreshes win."""
    base_url, mock = served
    mock.set_broken_modes(["non_atomic_rotation"])

    winners = []
    for _ in range(ROUNDS):
        results = race(base_url, mock, mint(mock).refresh_token)
        assert all(status < 500 for status, _ in results), results
        winners.append(sum(status == 200 for status, _ in results))
        if max(winners) > 1:
            break

    assert max(winners) > 1, winners
