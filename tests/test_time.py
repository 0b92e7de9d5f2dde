"""Time: freezegun moves an in-process server's clock; Clock.advance moves it through
the store, so every process sharing a SQLite file sees the same "now"."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from freezegun import freeze_time

from mock_server import MockServer, SQLiteStore
from mock_server.clock import OFFSET_SETTING, Clock
from mock_server.errors import InvalidGrant
from mock_server.records import Client

START = datetime(2030, 1, 1, tzinfo=timezone.utc)
DAY = 24 * 60 * 60
IDLE_TTL = DAY  # the Databricks example: refresh_token_ttl_in_minutes = 1440


def main_client(server: MockServer) -> Client:
    client = server.client(server.credentials["main"].client_id)
    assert client is not None
    return client


def frozen_at_start():
    # pytest's own timing stays real, so --durations is not thrown off.
    return freeze_time(START, ignore=["_pytest.timing"])


def test_clock_follows_real_time_by_default(store):
    """DESIGN time: with no offset the clock is the wall clock."""
    before = time.time()
    now = Clock(store).now()

    assert before <= now <= time.time()


def test_freezegun_stops_and_ticks_the_clock(store):
    """DESIGN time: in-process, freezegun is what moves the server's clock."""
    clock = Clock(store)
    with frozen_at_start() as frozen:
        assert clock.now() == START.timestamp()

        frozen.tick(30)

        assert clock.now() == START.timestamp() + 30


def test_freezegun_jump_of_thirty_days_expires_tokens(server):
    """STD-RT-39: a 30-day jump with freezegun reaches the server's clock."""
    client = main_client(server)
    with frozen_at_start() as frozen:
        tokens = server.authority.start_grant(client, "u", ["all-apis"])

        frozen.move_to(START + timedelta(days=30))

        assert server.clock.now() == START.timestamp() + 30 * DAY
        answer = server.authority.introspect(client, tokens.access_token)
        assert answer == {"active": False}
        with pytest.raises(InvalidGrant) as info:
            server.authority.refresh(client, tokens.refresh_token, None)
        assert info.value.reason == "expired"


def test_freezegun_tick_to_idle_ttl_kills_the_token(server):
    """STD-RT-39: under freezegun the token lives to TTL - 1 s and dies at TTL."""
    client = main_client(server)
    with frozen_at_start() as frozen:
        first = server.authority.start_grant(client, "u", ["all-apis"])
        second = server.authority.start_grant(client, "u", ["all-apis"])
        frozen.tick(IDLE_TTL - 1)
        server.authority.refresh(client, first.refresh_token, None)

        frozen.tick(1)

        with pytest.raises(InvalidGrant) as info:
            server.authority.refresh(client, second.refresh_token, None)
        assert info.value.reason == "expired"


def test_advance_moves_the_clock_through_the_store(store):
    """DESIGN time: Clock.advance keeps an offset in the store, forward or back."""
    clock = Clock(store)
    with frozen_at_start():
        assert clock.advance(3600) == 3600
        assert clock.now() == START.timestamp() + 3600
        assert clock.advance(-600) == 3000
        with store.transaction(write=False) as tx:
            assert tx.get("settings", OFFSET_SETTING) == 3000

        clock.set_offset(5)

        assert Clock(store).now() == START.timestamp() + 5


def test_advance_and_freezegun_add_up(store):
    """DESIGN time: the offset applies on top of whatever time.time() says."""
    clock = Clock(store)
    clock.advance(DAY)
    with frozen_at_start() as frozen:
        frozen.tick(60)

        assert clock.now() == START.timestamp() + 60 + DAY


def test_advance_is_shared_by_stores_on_one_file(tmp_path):
    """DESIGN time: two SQLite stores on one file ("two processes") share the clock."""
    path = tmp_path / "shared.db"
    worker_one = MockServer(store=SQLiteStore(path))
    worker_two = MockServer(store=SQLiteStore(path))
    client = main_client(worker_one)
    tokens = worker_one.authority.start_grant(client, "u", ["all-apis"])
    now = worker_two.clock.now()

    worker_one.clock.advance(IDLE_TTL)

    assert worker_two.clock.offset() == IDLE_TTL
    assert worker_two.clock.now() >= now + IDLE_TTL
    with pytest.raises(InvalidGrant) as info:
        worker_two.authority.refresh(client, tokens.refresh_token, None)
    assert info.value.reason == "expired"


def test_reset_puts_the_clock_back(store):
    """DESIGN admin reset: forgetting state also drops the clock offset."""
    server = MockServer(store=store)
    server.clock.advance(DAY)

    server.reset()

    assert server.clock.offset() == 0.0
