"""The admin API for tests: clock, policy, events, grants, faults, broken modes."""

from __future__ import annotations

import json

import pytest
from flask.testing import FlaskClient
from http_helpers import assert_error, assert_ok, http_client, make_server, refresh

from mock_server import MockServer
from mock_server.broken import BROKEN_MODES, FAULT_KINDS
from mock_server.tokens import fingerprint


@pytest.fixture
def mock() -> MockServer:
    return make_server()


@pytest.fixture
def http(mock: MockServer) -> FlaskClient:
    return http_client(mock)


def test_index_lists_endpoints_modes_and_faults(http):
    """Admin API: GET /admin documents itself."""
    body = http.get("/admin").get_json()

    assert "POST /admin/clock" in body["endpoints"]
    assert set(body["broken_modes"]) == set(BROKEN_MODES)
    assert set(body["fault_kinds"]) == set(FAULT_KINDS)


# ----------------------------------------------------------------------- clock


def test_clock_get_and_move(http):
    """Admin API: advance_seconds moves the clock, offset_seconds sets it."""
    start = http.get("/admin/clock").get_json()
    assert start["offset"] == 0

    advanced = http.post("/admin/clock", json={"advance_seconds": 90}).get_json()
    assert advanced["offset"] == 90
    assert advanced["now"] >= start["now"] + 90

    assert http.post("/admin/clock", json={"advance_seconds": 10}).get_json()[
        "offset"
    ] == pytest.approx(100)
    assert http.post("/admin/clock", json={"offset_seconds": 5}).get_json()[
        "offset"
    ] == pytest.approx(5)


def test_clock_move_expires_refresh_token(http, mock):
    """STD-RT-39: moving the clock past the idle TTL expires the token."""
    grant = http.post("/admin/grants", json={}).get_json()

    http.post("/admin/clock", json={"advance_seconds": 24 * 3600 + 1})

    assert_error(refresh(http, mock, grant["refresh_token"]), 400, "invalid_grant")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"advance_seconds": "10"},
        {"advance_seconds": True},
        {"advance_seconds": None},
        {"offset_seconds": [1]},
        {"advance_seconds": 1e300},
        {"offset_seconds": 10**400},
    ],
)
def test_clock_bad_input_is_400(http, body):
    """Admin API: a clock move that is not a sane number is 400."""
    response = http.post("/admin/clock", data=json.dumps(body), content_type="x/y")

    assert_error(response, 400, "invalid_request")
    assert http.get("/admin/clock").get_json()["offset"] == 0


@pytest.mark.parametrize(
    "text", ['{"advance_seconds": NaN}', '{"offset_seconds": -Infinity}']
)
def test_clock_refuses_nan_and_infinity(http, text):
    """Admin API: NaN and infinities are refused."""
    response = http.post("/admin/clock", data=text, content_type="application/json")

    assert_error(response, 400, "invalid_request")


def test_clock_offset_cannot_accumulate_to_overflow(http):
    """Admin API: repeated large moves stop before now() stops being a number."""
    step = {"advance_seconds": 3e9}

    assert http.post("/admin/clock", json=step).status_code == 200
    response = http.post("/admin/clock", json=step)

    assert_error(response, 400, "invalid_request")
    assert http.get("/admin/clock").get_json()["offset"] == 3e9


def test_clock_bound_holds_when_workers_advance_at_once(tmp_path):
    """Admin API: the offset bound is checked in the write's own transaction.

    Eight threads on one SQLite store each ask for 60% of the bound: exactly one
    may succeed, whatever the interleaving.
    """
    import threading

    from mock_server import SQLiteStore
    from mock_server.admin_views import MAX_OFFSET_SECONDS
    from mock_server.clock import Clock, OffsetOutOfRange

    clock = Clock(SQLiteStore(tmp_path / "clock.db"))
    start = threading.Barrier(8)
    moved = []

    def advance():
        start.wait()
        try:
            clock.advance(0.6 * MAX_OFFSET_SECONDS, bound=MAX_OFFSET_SECONDS)
            moved.append(True)
        except OffsetOutOfRange:
            pass

    threads = [threading.Thread(target=advance) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(moved) == 1
    assert clock.offset() == 0.6 * MAX_OFFSET_SECONDS


# ---------------------------------------------------------------------- policy


def test_set_policy_applies_to_next_tokens(http, mock):
    """Admin API: PUT a policy; the client's next token response follows it."""
    grant = http.post("/admin/grants", json={}).get_json()

    response = http.put(
        "/admin/clients/rotcert-client/policy",
        json={
            "access_token_ttl_in_minutes": 5,
            "refresh_token_ttl_in_minutes": 5,
            "enable_single_use_refresh_tokens": False,
        },
    )

    assert response.status_code == 200
    assert (
        response.get_json()["token_access_policy"]["access_token_ttl_in_minutes"] == 5
    )
    body = assert_ok(refresh(http, mock, grant["refresh_token"]))
    assert body["expires_in"] == 300
    assert body["refresh_token"] == grant["refresh_token"]


def test_set_policy_accepts_an_app_integration_object(http, mock):
    """DESIGN policy: a whole app-integration object is accepted too."""
    response = http.put(
        "/admin/clients/rotcert-client/policy",
        json={
            "name": "x",
            "token_access_policy": {"access_token_ttl_in_minutes": 7},
        },
    )

    assert response.status_code == 200
    assert mock.client("rotcert-client").policy.access_ttl == 420


@pytest.mark.parametrize(
    ("policy", "words"),
    [
        ({"access_token_ttl_in_minutes": 0}, ["access_token_ttl_in_minutes", "0", "5"]),
        ({"reuse_detection": "nope"}, ["reuse_detection", "nope", "revoke_family"]),
        ({"no_such_field": 1}, ["no_such_field"]),
    ],
)
def test_bad_policy_is_400_with_message(http, mock, policy, words):
    """DESIGN policy: a bad policy is 400 naming field, value and range."""
    before = mock.client("rotcert-client").policy_json

    response = http.put("/admin/clients/rotcert-client/policy", json=policy)

    assert_error(response, 400, "invalid_request")
    message = response.get_json()["error_description"]
    assert all(word in message for word in words), message
    assert mock.client("rotcert-client").policy_json == before


def test_policy_for_unknown_client_is_400(http):
    """Admin API: a policy for an unknown client is refused."""
    response = http.put("/admin/clients/nobody/policy", json={})

    assert_error(response, 400, "invalid_request")


def test_clients_lists_credentials_and_policies(http, mock):
    """Admin API: GET /admin/clients shows the start-up credentials."""
    clients = {
        c["client_id"]: c for c in http.get("/admin/clients").get_json()["clients"]
    }

    main = clients["rotcert-client"]
    assert main["role"] == "main" and main["confidential"] is True
    assert main["client_secret"] == mock.credentials["main"].client_secret
    assert clients["rotcert-public"]["client_secret"] is None


def test_grant_types_restriction(http):
    """STD-RT-16 hook: GET/PUT a client's allowed grant types; bad names are 400."""
    path = "/admin/clients/rotcert-client/grant-types"
    assert http.get(path).get_json()["grant_types"] == [
        "authorization_code",
        "refresh_token",
    ]

    assert http.put(path, json={"grant_types": ["refresh_token"]}).status_code == 200
    assert http.get(path).get_json()["grant_types"] == ["refresh_token"]
    assert_error(
        http.put(path, json={"grant_types": ["password"]}), 400, "invalid_request"
    )
    assert_error(http.put(path, json={"grant_types": "x"}), 400, "invalid_request")
    http.post("/admin/reset")
    assert len(http.get(path).get_json()["grant_types"]) == 2


# ---------------------------------------------------------------------- grants


def test_mint_grant_without_a_browser(http, mock):
    """Admin API: POST /admin/grants opens a family at generation 0."""
    response = http.post(
        "/admin/grants", json={"client_id": "rotcert-public", "scope": "all-apis"}
    )

    body = assert_ok(response)
    assert body["scope"] == "all-apis"
    lineage = http.get(f"/admin/families/{body['family_id']}").get_json()
    assert lineage["family"]["client_id"] == "rotcert-public"
    tokens = lineage["refresh_tokens"]
    assert [t["generation"] for t in tokens] == [0]
    assert tokens[0]["fingerprint"] == fingerprint(body["refresh_token"])
    assert "token_hash" not in tokens[0]
    assert_ok(refresh(http, mock, body["refresh_token"], "public"))


@pytest.mark.parametrize(
    "body",
    [
        {"client_id": "nobody"},
        {"scope": ["a"]},
        {"scope": "all-apis admin"},
        {"user": 5},
        {"client_id": ["x"]},
    ],
)
def test_mint_grant_bad_input_is_400(http, body):
    """Admin API: unknown clients, scopes the client lacks and wrongly typed
    fields are 400."""
    assert_error(http.post("/admin/grants", json=body), 400, "invalid_request")


def test_unknown_family_is_400(http):
    """Admin API: an unknown family id is refused."""
    assert_error(http.get("/admin/families/fam-nope"), 400, "invalid_request")


# ---------------------------------------------------------------------- events


def test_events_since_beyond_sqlite_integers_is_not_a_500(tmp_path):
    """Admin API: a huge since is clamped, on SQLite too (no OverflowError)."""
    from mock_server import SQLiteStore, create_app

    client = create_app(MockServer(store=SQLiteStore(tmp_path / "e.db"))).test_client()

    for path in ("/admin/events", "/admin/events.jsonl"):
        response = client.get(path + "?since=9223372036854775808")
        assert response.status_code == 200


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/admin/grants", b'{"client_id": "\\ud800"}'),
        ("/admin/grants", b'{"user": "\\udfff"}'),
        ("/admin/faults", b'{"kind": "http_500", "client_id": "\\ud800"}'),
    ],
)
def test_lone_surrogate_is_400_on_sqlite(tmp_path, path, body):
    """Admin API: JSON that decodes to text SQLite cannot store is a 400, not 500."""
    from mock_server import SQLiteStore, create_app

    client = create_app(MockServer(store=SQLiteStore(tmp_path / "s.db"))).test_client()

    response = client.post(path, data=body, content_type="application/json")

    assert_error(response, 400, "invalid_request")


def test_unwritable_record_file_costs_no_successor(tmp_path):
    """Admin API / DESIGN atomicity: a failing --record write never fails a refresh.

    The rotation has committed when the event is written; a 500 then would lose
    the successor (STD-RT-33).
    """
    mock = make_server(record="/dev/full")
    http = http_client(mock)
    grant = http.post("/admin/grants", json={}).get_json()

    response = refresh(http, mock, grant["refresh_token"])

    assert response.status_code == 200
    assert response.get_json()["refresh_token"] != grant["refresh_token"]
    assert [e["outcome"] for e in mock.store.events()][-1] == "rotated"


def test_events_as_json_and_jsonl(http, mock):
    """Admin API: events come as JSON (with since) and as JSON Lines."""
    grant = http.post("/admin/grants", json={}).get_json()
    refresh(http, mock, grant["refresh_token"])
    refresh(http, mock, grant["refresh_token"])

    events = http.get("/admin/events").get_json()["events"]
    later = http.get("/admin/events?since=1").get_json()["events"]
    jsonl = http.get("/admin/events.jsonl")

    assert [e["endpoint"] for e in events] == ["admin_grant", "token", "token"]
    assert [e["seq"] for e in events] == [1, 2, 3]
    assert later == events[1:]
    assert jsonl.mimetype == "application/x-ndjson"
    assert [json.loads(line) for line in jsonl.get_data(as_text=True).splitlines()] == (
        events
    )
    assert_error(http.get("/admin/events?since=x"), 400, "invalid_request")


# ------------------------------------------------------------ faults and modes


def test_faults_add_list_fire_and_clear(http, mock):
    """Admin API: faults are listed, used up by count, and cleared."""
    response = http.post("/admin/faults", json={"kind": "http_500", "count": 1})
    assert response.status_code == 200
    assert http.get("/admin/faults").get_json()["faults"] == [
        {"kind": "http_500", "count": 1}
    ]

    grant = http.post("/admin/grants", json={}).get_json()
    assert refresh(http, mock, grant["refresh_token"]).status_code == 500
    assert http.get("/admin/faults").get_json()["faults"][0]["count"] == 0
    assert_ok(refresh(http, mock, grant["refresh_token"]))

    http.post("/admin/faults", json={"kind": "http_500"})
    assert http.delete("/admin/faults").get_json() == {"faults": []}
    assert http.get("/admin/faults").get_json() == {"faults": []}


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "nope"},
        {"kind": ["http_500"]},
        {"kind": {"a": 1}},
        {},
        {"kind": "delay", "delay_ms": -5},
        {"kind": "delay", "delay_ms": "5"},
        {"kind": "http_500", "count": -1},
        {"kind": "http_500", "count": 1.5},
        {"kind": "http_500", "client_id": ["x"]},
    ],
)
def test_bad_fault_is_400(http, fault):
    """Admin API: unknown kinds and bad numbers are 400, never 500."""
    assert_error(http.post("/admin/faults", json=fault), 400, "invalid_request")
    assert http.get("/admin/faults").get_json() == {"faults": []}


def test_broken_modes_get_put(http, mock):
    """Admin API: broken modes are listed, set, and refused when unknown."""
    body = http.get("/admin/broken-modes").get_json()
    assert body["modes"] == [] and set(body["available"]) == set(BROKEN_MODES)

    response = http.put("/admin/broken-modes", json={"modes": ["no_rotation"]})
    assert response.get_json() == {"modes": ["no_rotation"]}
    assert mock.broken_modes() == {"no_rotation"}
    grant = http.post("/admin/grants", json={}).get_json()
    again = assert_ok(refresh(http, mock, grant["refresh_token"]))
    assert again["refresh_token"] == grant["refresh_token"]

    for bad in ({"modes": ["nope"]}, {"modes": "no_rotation"}, {"modes": [1]}):
        assert_error(http.put("/admin/broken-modes", json=bad), 400, "invalid_request")
    assert mock.broken_modes() == {"no_rotation"}


def test_reset_forgets_state_but_keeps_clients(http, mock):
    """Admin API: reset forgets grants, events, faults, modes and clock."""
    grant = http.post("/admin/grants", json={}).get_json()
    http.post("/admin/clock", json={"advance_seconds": 50})
    http.post("/admin/faults", json={"kind": "http_500"})
    http.put("/admin/broken-modes", json={"modes": ["no_rotation"]})

    assert http.post("/admin/reset").get_json() == {"reset": True}

    assert http.get("/admin/clock").get_json()["offset"] == 0
    assert http.get("/admin/faults").get_json() == {"faults": []}
    assert http.get("/admin/broken-modes").get_json()["modes"] == []
    assert http.get("/admin/events").get_json() == {"events": []}
    assert_error(refresh(http, mock, grant["refresh_token"]), 400, "invalid_grant")
    fresh = http.post("/admin/grants", json={}).get_json()
    assert_ok(refresh(http, mock, fresh["refresh_token"]))


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/admin/clock", b"not json"),
        ("/admin/clock", b"[1]"),
        ("/admin/faults", b"\xff\xfe"),
        ("/admin/grants", b"[" * 50_000),
        ("/admin/clock", b'{"advance_seconds": 1' + b"0" * 5000 + b"}"),
    ],
)
def test_non_json_admin_body_is_400(http, path, body):
    """Admin API: bodies that are not a JSON object are 400 JSON, never 500."""
    response = http.post(path, data=body, content_type="application/json")

    assert_error(response, 400, "invalid_request")
