"""The rotation state machine (TokenAuthority) on both stores, driven without HTTP."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from freezegun import freeze_time

from mock_server import MockServer, SQLiteStore
from mock_server.errors import InvalidGrant, InvalidScope, InvalidToken
from mock_server.records import Client
from mock_server.rotation import TokenSet
from mock_server.store import KINDS
from mock_server.tokens import fingerprint, new_token, seal, token_hash, unseal

MINUTE = 60
DAY = 24 * 60 * MINUTE
# The Databricks example policy every server starts with.
IDLE_TTL = 1440 * MINUTE
ABSOLUTE_LIFETIME = 43200 * MINUTE
USER = "user@example.com"
SCOPES = ["all-apis", "offline_access"]
GRACE = 10


@pytest.fixture(autouse=True)
def frozen():
    """Wall time stands still, so lifetimes are checked to the second; tests move
    the server's clock with travel()."""
    with freeze_time("2030-01-01 00:00:00", ignore=["_pytest.timing"]):
        yield


# ------------------------------------------------------------------ helpers


def client_of(server: MockServer, role: str = "main") -> Client:
    client = server.client(server.credentials[role].client_id)
    assert client is not None
    return client


def grant(server: MockServer, role: str = "main") -> TokenSet:
    return server.authority.start_grant(client_of(server, role), USER, list(SCOPES))


def refresh(
    server: MockServer,
    token: str,
    role: str = "main",
    scope: list[str] | None = None,
) -> TokenSet:
    return server.authority.refresh(client_of(server, role), token, scope)


def refused(server: MockServer, token: str, role: str = "main") -> str:
    """Refresh and expect invalid_grant; return the event-log reason."""
    with pytest.raises(InvalidGrant) as info:
        refresh(server, token, role)
    return info.value.reason


def travel(server: MockServer, seconds: float) -> None:
    server.clock.advance(seconds)


def active(server: MockServer, token: str, role: str = "main") -> bool:
    return server.authority.introspect(client_of(server, role), token)["active"]


def access_valid(server: MockServer, token: str) -> bool:
    try:
        server.authority.validate_access(token)
    except InvalidToken:
        return False
    return True


def family_revoked(server: MockServer, family_id: str) -> bool:
    lineage = server.authority.lineage(family_id)
    assert lineage is not None
    return lineage["family"]["revoked_at"] is not None


# ---------------------------------------------------------------- rotation


def test_rotation_issues_new_token_and_consumes_presented(server):
    """STD-RT-33/34: a refresh returns a different token and spends the old one."""
    first = grant(server)
    second = refresh(server, first.refresh_token)

    assert second.outcome == "rotated"
    assert second.refresh_token not in (None, first.refresh_token)
    assert second.access_token != first.access_token
    assert second.family_id == first.family_id
    assert not active(server, first.refresh_token)
    assert active(server, second.refresh_token)
    assert refused(server, first.refresh_token) == "reuse_detected"


def test_generations_count_up_and_lineage_matches(server):
    """DESIGN generation: 0 at the grant, n+1 per rotation; lineage keeps the chain."""
    tokens = [grant(server)]
    for _ in range(3):
        tokens.append(refresh(server, tokens[-1].refresh_token))

    assert [t.generation for t in tokens] == [0, 1, 2, 3]
    assert {t.family_id for t in tokens} == {tokens[0].family_id}

    lineage = server.authority.lineage(tokens[0].family_id)
    assert lineage["family"]["generation"] == 3
    assert lineage["family"]["user"] == USER
    records = lineage["refresh_tokens"]
    assert [r["generation"] for r in records] == [0, 1, 2, 3]
    assert [r["fingerprint"] for r in records] == [
        fingerprint(t.refresh_token) for t in tokens
    ]
    assert [r["consumed_at"] is None for r in records] == [False, False, False, True]
    for record in records:
        assert {"token_hash", "successor_hash", "sealed_response"}.isdisjoint(record)


def test_lineage_of_unknown_family_is_none(server):
    """DESIGN lineage: an unknown family id gives None, not an error."""
    assert server.authority.lineage("fam-does-not-exist") is None


# ------------------------------------------------------------------- reuse


@pytest.mark.parametrize("order", ["legitimate_first", "attacker_first"])
def test_reuse_revokes_family_and_access_tokens(server, order):
    """STD-RT-35/36: reuse outside grace revokes the family, access tokens too."""
    first = grant(server)
    issued = [first, refresh(server, first.refresh_token)]
    if order == "legitimate_first":
        # The victim has moved on twice; the newest token is the one that must die.
        issued.append(refresh(server, issued[-1].refresh_token))

    assert refused(server, first.refresh_token) == "reuse_detected"

    newest = issued[-1].refresh_token
    assert refused(server, newest) == "family_revoked"
    assert not active(server, newest)
    assert family_revoked(server, first.family_id)
    for tokens in issued:
        with pytest.raises(InvalidToken) as info:
            server.authority.validate_access(tokens.access_token)
        assert info.value.reason == "revoked"
        assert not active(server, tokens.access_token)


def test_reuse_with_broadened_scope_is_still_reuse(server):
    """STD-RT-35: a replay that also asks for more scope is detected as reuse,
    not merely refused for its scope."""
    first = grant(server)
    successor = refresh(server, first.refresh_token)

    with pytest.raises(InvalidGrant) as info:
        refresh(server, first.refresh_token, scope=[*SCOPES, "extra"])

    assert info.value.reason == "reuse_detected"
    assert refused(server, successor.refresh_token) == "family_revoked"


@pytest.mark.parametrize("policy", [{"reuse_revokes_access_tokens": False}])
def test_reuse_can_spare_access_tokens(server):
    """STD-RT-36 knob: reuse_revokes_access_tokens=false kills refresh tokens only."""
    first = grant(server)
    second = refresh(server, first.refresh_token)

    assert refused(server, first.refresh_token) == "reuse_detected"

    assert refused(server, second.refresh_token) == "family_revoked"
    assert access_valid(server, second.access_token)
    assert active(server, second.access_token)


@pytest.mark.parametrize("policy", [{"reuse_detection": "reject_only"}])
@pytest.mark.parametrize("order", ["legitimate_first", "attacker_first"])
def test_reject_only_leaves_family_alive(server, order):
    """STD-RT-35 knob reject_only: the replay is refused, the family lives on."""
    first = grant(server)
    second = refresh(server, first.refresh_token)
    if order == "legitimate_first":
        second = refresh(server, second.refresh_token)

    assert refused(server, first.refresh_token) == "reuse_detected"

    assert not family_revoked(server, first.family_id)
    assert access_valid(server, second.access_token)
    assert refresh(server, second.refresh_token).outcome == "rotated"


def test_families_of_one_user_and_client_are_independent(server):
    """DESIGN family: reuse in one grant leaves another grant of the same user alone."""
    one, other = grant(server), grant(server)
    assert one.family_id != other.family_id

    refresh(server, one.refresh_token)
    assert refused(server, one.refresh_token) == "reuse_detected"

    assert family_revoked(server, one.family_id)
    assert not family_revoked(server, other.family_id)
    assert access_valid(server, other.access_token)
    assert refresh(server, other.refresh_token).outcome == "rotated"


# ---------------------------------------------------------------- lifetime


def test_idle_ttl_token_works_one_second_before(server):
    """STD-RT-39: a refresh token is still usable at idle TTL - 1 s."""
    first = grant(server)
    travel(server, IDLE_TTL - 1)

    assert refresh(server, first.refresh_token).outcome == "rotated"


@pytest.mark.parametrize("late", [0, 1])
def test_idle_ttl_token_dies_at_ttl(server, late):
    """STD-RT-39: an unused refresh token dies at exactly its idle TTL and after."""
    first = grant(server)
    travel(server, IDLE_TTL + late)

    assert not active(server, first.refresh_token)
    assert refused(server, first.refresh_token) == "expired"


def test_rotation_renews_idle_ttl(server):
    """STD-RT-39 / DESIGN idle TTL: each rotated token gets the idle TTL afresh."""
    first = grant(server)
    travel(server, IDLE_TTL - 1)
    second = refresh(server, first.refresh_token)
    travel(server, IDLE_TTL - 1)

    third = refresh(server, second.refresh_token)
    travel(server, IDLE_TTL)

    assert refused(server, third.refresh_token) == "expired"


def test_databricks_example_absolute_lifetime_caps_rotation(server):
    """STD-RT-41: rotating every 1439 min never extends the 43200 min session."""
    first = grant(server)
    started = server.clock.now()
    current, rotations = first, 0
    while (rotations + 1) * 1439 * MINUTE < ABSOLUTE_LIFETIME:
        travel(server, 1439 * MINUTE)
        current = refresh(server, current.refresh_token)
        rotations += 1
    assert rotations == 30
    assert current.generation == 30

    # The last token was issued at 43170 min; idle TTL alone would keep it to 44610.
    last = server.authority.lineage(first.family_id)["refresh_tokens"][-1]
    assert last["idle_expires_at"] == started + (43170 + 1440) * MINUTE
    travel(server, started + ABSOLUTE_LIFETIME - 1 - server.clock.now())
    answer = server.authority.introspect(client_of(server), current.refresh_token)
    assert answer["active"] is True
    assert answer["exp"] == int(started + ABSOLUTE_LIFETIME)

    travel(server, 1)
    assert not active(server, current.refresh_token)
    assert refused(server, current.refresh_token) == "session_expired"


# ------------------------------------------------------------------- grace


@pytest.mark.parametrize("policy", [{"reuse_grace_period_in_seconds": GRACE}])
def test_grace_replay_returns_same_successor(server):
    """DESIGN grace (same_successor): a replay inside grace repeats the response."""
    first = grant(server)
    second = refresh(server, first.refresh_token)
    travel(server, GRACE / 2)

    replay = refresh(server, first.refresh_token)

    assert replay.outcome == "grace_replay"
    assert replay.refresh_token == second.refresh_token
    assert replay.access_token == second.access_token
    assert replay.generation == 1
    assert refresh(server, second.refresh_token).outcome == "rotated"


@pytest.mark.parametrize(
    "policy",
    [{"reuse_grace_period_in_seconds": GRACE, "grace_response": "new_pair"}],
)
def test_grace_replay_new_pair_supersedes_old_successor(server):
    """DESIGN grace (new_pair): a replay mints a new pair; the old successor is dead."""
    first = grant(server)
    second = refresh(server, first.refresh_token)
    travel(server, GRACE / 2)

    replay = refresh(server, first.refresh_token)

    assert replay.outcome == "grace_replay"
    assert replay.refresh_token not in (first.refresh_token, second.refresh_token)
    assert replay.generation == 1
    assert not active(server, second.refresh_token)
    assert active(server, replay.refresh_token)
    assert refresh(server, replay.refresh_token).outcome == "rotated"
    # Presenting the superseded successor is reuse, grace or not.
    assert refused(server, second.refresh_token) == "reuse_detected"
    assert family_revoked(server, first.family_id)


@pytest.mark.parametrize("policy", [{"reuse_grace_period_in_seconds": GRACE}])
@pytest.mark.parametrize(
    ("after", "tolerated"), [(GRACE, True), (GRACE + 0.001, False), (GRACE + 1, False)]
)
def test_grace_edge_is_inclusive(server, after, tolerated):
    """DESIGN grace: a replay exactly at the grace edge is tolerated; later is reuse."""
    first = grant(server)
    refresh(server, first.refresh_token)
    travel(server, after)

    if tolerated:
        assert refresh(server, first.refresh_token).outcome == "grace_replay"
    else:
        assert refused(server, first.refresh_token) == "reuse_detected"
        assert family_revoked(server, first.family_id)


@pytest.mark.parametrize("policy", [{"reuse_grace_period_in_seconds": GRACE}])
def test_grace_covers_only_the_immediate_predecessor(server):
    """K3 (django-oauth-toolkit #1617): a token two generations old is reuse."""
    first = grant(server)
    second = refresh(server, first.refresh_token)
    third = refresh(server, second.refresh_token)

    assert refresh(server, second.refresh_token).refresh_token == third.refresh_token
    assert refused(server, first.refresh_token) == "reuse_detected"
    assert refused(server, third.refresh_token) == "family_revoked"


@pytest.mark.parametrize("policy", [{"reuse_grace_period_in_seconds": GRACE}])
@pytest.mark.parametrize("revoked", ["predecessor", "successor"])
def test_revoked_token_never_gets_grace(server, revoked):
    """STD-RT-46 / DESIGN grace: after revoke() no replay is tolerated in grace."""
    first = grant(server)
    second = refresh(server, first.refresh_token)
    target = first if revoked == "predecessor" else second

    server.authority.revoke(client_of(server), target.refresh_token)

    assert refused(server, first.refresh_token) == "family_revoked"
    assert refused(server, second.refresh_token) == "family_revoked"


@pytest.mark.parametrize(
    "policy",
    [
        {"reuse_grace_period_in_seconds": GRACE},
        {"reuse_grace_period_in_seconds": GRACE, "grace_response": "new_pair"},
    ],
    ids=["same_successor", "new_pair"],
)
def test_grace_replays_do_not_count_as_reuse(server):
    """DESIGN grace: tolerated replays neither revoke the family nor count as reuse."""
    first = grant(server)
    latest = refresh(server, first.refresh_token)
    for _ in range(3):
        latest = refresh(server, first.refresh_token)
        assert latest.outcome == "grace_replay"

    assert not family_revoked(server, first.family_id)
    assert access_valid(server, first.access_token)
    assert refresh(server, latest.refresh_token).generation == 2


# ------------------------------------------------------- client and scope


@pytest.mark.parametrize("intruder", ["second", "public"])
def test_wrong_client_is_refused_without_consuming(server, intruder):
    """STD-RT-19/20: another client's refresh token is refused and left unspent."""
    first = grant(server)

    assert refused(server, first.refresh_token, role=intruder) == "wrong_client"

    assert active(server, first.refresh_token)
    assert refresh(server, first.refresh_token).generation == 1
    assert not family_revoked(server, first.family_id)


def test_broadened_scope_is_refused_without_consuming(server):
    """STD-RT-27: asking for more than was granted is invalid_scope; token unspent."""
    first = grant(server)

    with pytest.raises(InvalidScope):
        refresh(server, first.refresh_token, scope=[*SCOPES, "admin"])

    assert active(server, first.refresh_token)
    assert refresh(server, first.refresh_token).scope == SCOPES


def test_narrowed_scope_narrows_access_token_only(server):
    """STD-RT-28: a narrower scope narrows the access token; the successor keeps all."""
    first = grant(server)

    narrow = refresh(server, first.refresh_token, scope=["all-apis"])

    assert narrow.scope == ["all-apis"]
    assert server.authority.validate_access(narrow.access_token).scope == ["all-apis"]
    answer = server.authority.introspect(client_of(server), narrow.refresh_token)
    assert answer["scope"] == " ".join(SCOPES)
    other = refresh(server, narrow.refresh_token, scope=["offline_access"])
    assert other.scope == ["offline_access"]
    assert refresh(server, other.refresh_token).scope == SCOPES


# ----------------------------------------------------------- non-rotating


@pytest.mark.parametrize(
    "policy",
    [{"enable_single_use_refresh_tokens": False, "non_rotating_response": "same"}],
)
def test_non_rotating_same_returns_presented_token(server):
    """STD-RT-31 knob same: the presented refresh token comes back and keeps working."""
    first = grant(server)
    for _ in range(3):
        again = refresh(server, first.refresh_token)
        assert again.outcome == "not_rotated"
        assert again.refresh_token == first.refresh_token
        assert again.generation == 0
        assert access_valid(server, again.access_token)
    assert active(server, first.refresh_token)


@pytest.mark.parametrize(
    "policy",
    [{"enable_single_use_refresh_tokens": False, "non_rotating_response": "omit"}],
)
def test_non_rotating_omit_leaves_refresh_token_out(server):
    """STD-RT-10/31 knob omit: no refresh_token in the response; the old one works."""
    first = grant(server)
    for _ in range(3):
        again = refresh(server, first.refresh_token)
        assert again.refresh_token is None
        assert "refresh_token" not in again.response()
    assert active(server, first.refresh_token)


@pytest.mark.parametrize(
    "policy",
    [
        {
            "enable_single_use_refresh_tokens": False,
            "non_rotating_response": "new_token_old_valid",
        }
    ],
)
def test_non_rotating_new_token_keeps_old_valid(server):
    """STD-RT-31 knob new_token_old_valid: a new token is issued, the old one lives."""
    first = grant(server)
    second = refresh(server, first.refresh_token)
    third = refresh(server, first.refresh_token)

    assert len({first.refresh_token, second.refresh_token, third.refresh_token}) == 3
    assert (second.generation, third.generation) == (1, 2)
    for tokens in (first, second, third):
        assert active(server, tokens.refresh_token)
    assert refresh(server, second.refresh_token).outcome == "not_rotated"
    assert not family_revoked(server, first.family_id)


# ------------------------------------------------------------------ revoke


def test_revoking_refresh_token_kills_whole_family(server):
    """STD-RT-45/46/47: revoking a refresh token revokes the grant and its access."""
    first = grant(server)
    second = refresh(server, first.refresh_token)

    revoked = server.authority.revoke(client_of(server), second.refresh_token)

    assert revoked == first.family_id
    assert refused(server, second.refresh_token) == "family_revoked"
    for tokens in (first, second):
        assert not access_valid(server, tokens.access_token)
        assert not active(server, tokens.access_token)
    # STD-RT-51: revoking again is no error.
    assert server.authority.revoke(client_of(server), second.refresh_token) == revoked


def test_revoking_access_token_leaves_refresh_token(server):
    """STD-RT-45/48: an access token is revoked alone; its refresh token still works."""
    first = grant(server)

    assert server.authority.revoke(client_of(server), first.access_token) is None

    assert not access_valid(server, first.access_token)
    second = refresh(server, first.refresh_token)
    assert access_valid(server, second.access_token)
    assert not family_revoked(server, first.family_id)


@pytest.mark.parametrize("kind", ["refresh_token", "access_token"])
def test_revoking_another_clients_token_is_refused(server, kind):
    """STD-RT-50: a client cannot revoke another client's token; it stays usable."""
    first = grant(server)

    with pytest.raises(InvalidGrant):
        server.authority.revoke(client_of(server, "second"), getattr(first, kind))

    assert access_valid(server, first.access_token)
    assert refresh(server, first.refresh_token).outcome == "rotated"


def test_revoking_unknown_token_is_no_error(server):
    """STD-RT-51: revoking a token the server never issued answers quietly."""
    assert server.authority.revoke(client_of(server), "garbage") is None


# -------------------------------------------------------------- introspect


def test_introspect_live_tokens(server):
    """STD-RT-54: live tokens are active, with type, client, subject, scope, times."""
    first = grant(server)
    now = server.clock.now()
    main = client_of(server)

    rt = server.authority.introspect(main, first.refresh_token)
    at = server.authority.introspect(main, first.access_token)

    assert rt == {
        "active": True,
        "token_type": "refresh_token",
        "client_id": main.client_id,
        "sub": USER,
        "scope": " ".join(SCOPES),
        "iat": int(now),
        "exp": int(now + IDLE_TTL),
    }
    assert at["active"] is True
    assert at["token_type"] == "access_token"
    assert at["exp"] == int(now + 60 * MINUTE)


def _consumed(server: MockServer, tokens: TokenSet) -> str:
    refresh(server, tokens.refresh_token)
    return tokens.refresh_token


def _revoked(server: MockServer, tokens: TokenSet) -> str:
    server.authority.revoke(client_of(server), tokens.refresh_token)
    return tokens.refresh_token


def _expired(server: MockServer, tokens: TokenSet) -> str:
    travel(server, IDLE_TTL)
    return tokens.refresh_token


def _expired_access(server: MockServer, tokens: TokenSet) -> str:
    travel(server, 60 * MINUTE)
    return tokens.access_token


def _revoked_access(server: MockServer, tokens: TokenSet) -> str:
    server.authority.revoke(client_of(server), tokens.access_token)
    return tokens.access_token


@pytest.mark.parametrize(
    "make",
    [_consumed, _revoked, _expired, _expired_access, _revoked_access],
    ids=["consumed", "revoked", "expired", "expired_access", "revoked_access"],
)
def test_introspect_inactive_tokens(server, make):
    """STD-RT-54: consumed, revoked and expired tokens are just {"active": false}."""
    token = make(server, grant(server))

    assert server.authority.introspect(client_of(server), token) == {"active": False}


@pytest.mark.parametrize("kind", ["refresh_token", "access_token"])
def test_introspect_foreign_and_unknown_tokens(server, kind):
    """STD-RT-54: another client's token and an unknown one look alike: inactive."""
    token = getattr(grant(server), kind)

    assert server.authority.introspect(client_of(server, "second"), token) == {
        "active": False
    }
    assert server.authority.introspect(client_of(server), "garbage") == {
        "active": False
    }
    assert active(server, token)


# ------------------------------------------------------------ broken modes

# Each probe checks one rule on a fresh family and says whether it held. Probes use
# burn() to get a consumed token, so they do not depend on rotation working.


def _probe_rotates(server: MockServer) -> bool:
    first = grant(server)
    second = refresh(server, first.refresh_token)
    return second.refresh_token not in (None, first.refresh_token) and not active(
        server, first.refresh_token
    )


def _probe_reuse_refused(server: MockServer) -> bool:
    first = grant(server)
    server.authority.burn(first.refresh_token)
    try:
        refresh(server, first.refresh_token)
    except InvalidGrant:
        return True
    return False


def _probe_reuse_revokes_family(server: MockServer) -> bool:
    first = grant(server)
    server.authority.burn(first.refresh_token)
    try:
        refresh(server, first.refresh_token)
    except InvalidGrant:
        pass
    return family_revoked(server, first.family_id) and not access_valid(
        server, first.access_token
    )


def _probe_idle_ttl(server: MockServer) -> bool:
    first = grant(server, "second")
    travel(server, 600)
    try:
        refresh(server, first.refresh_token, "second")
    except InvalidGrant:
        return True
    return False


def _probe_absolute_lifetime(server: MockServer) -> bool:
    first = grant(server, "public")
    travel(server, 600)
    try:
        refresh(server, first.refresh_token, "public")
    except InvalidGrant:
        return True
    return False


def _probe_wrong_client_unspent(server: MockServer) -> bool:
    first = grant(server)
    try:
        refresh(server, first.refresh_token, "second")
    except InvalidGrant:
        pass
    return active(server, first.refresh_token)


PROBES: dict[str, Callable[[MockServer], bool]] = {
    "rotates": _probe_rotates,
    "reuse_refused": _probe_reuse_refused,
    "reuse_revokes_family": _probe_reuse_revokes_family,
    "idle_ttl": _probe_idle_ttl,
    "absolute_lifetime": _probe_absolute_lifetime,
    "wrong_client_unspent": _probe_wrong_client_unspent,
}

# The rules each mode must break, and no others. A server that accepts reuse never
# detects it, so it cannot revoke the family either. non_atomic_rotation shows only
# under concurrency and consume_on_failed_client_auth only in the token view (which
# calls burn()); neither may change a sequential run of the state machine.
BROKEN_RULES = {
    "none": set(),
    "no_rotation": {"rotates"},
    "reuse_accepted": {"reuse_refused", "reuse_revokes_family"},
    "family_not_revoked": {"reuse_revokes_family"},
    "absolute_lifetime_ignored": {"absolute_lifetime"},
    "idle_ttl_ignored": {"idle_ttl"},
    "non_atomic_rotation": set(),
    "consume_on_failed_client_auth": set(),
}


@pytest.mark.parametrize("mode", list(BROKEN_RULES))
def test_broken_mode_breaks_exactly_its_rule(server, set_policy, mode):
    """DESIGN broken modes: each mode breaks the rule it names and no other."""
    # Idle TTL probe: idle 600 s inside a long session; absolute probe: the reverse.
    set_policy(
        "second",
        access_token_ttl_in_seconds=60,
        refresh_token_ttl_in_seconds=600,
        absolute_session_lifetime_in_seconds=3600,
    )
    set_policy(
        "public",
        access_token_ttl_in_seconds=60,
        refresh_token_ttl_in_seconds=3600,
        absolute_session_lifetime_in_seconds=600,
    )
    server.set_broken_modes([] if mode == "none" else [mode])

    broken = {name for name, probe in PROBES.items() if not probe(server)}

    assert broken == BROKEN_RULES[mode]


def test_no_rotation_returns_presented_token(server):
    """Broken no_rotation: a single-use policy hands back the presented token."""
    server.set_broken_modes(["no_rotation"])
    first = grant(server)

    for _ in range(3):
        again = refresh(server, first.refresh_token)
        assert again.refresh_token == first.refresh_token
        assert again.outcome == "not_rotated"
    assert server.authority.lineage(first.family_id)["family"]["generation"] == 0


def test_reuse_accepted_rotates_a_spent_token_again(server):
    """Broken reuse_accepted: a consumed token yields another successor."""
    server.set_broken_modes(["reuse_accepted"])
    first = grant(server)
    second = refresh(server, first.refresh_token)

    again = refresh(server, first.refresh_token)

    assert again.refresh_token not in (first.refresh_token, second.refresh_token)
    assert again.outcome == "rotated"
    assert not family_revoked(server, first.family_id)


def test_family_not_revoked_rejects_reuse_but_keeps_successor(server):
    """Broken family_not_revoked: reuse is refused, the successor lives on."""
    server.set_broken_modes(["family_not_revoked"])
    first = grant(server)
    second = refresh(server, first.refresh_token)

    assert refused(server, first.refresh_token) == "reuse_detected"

    assert access_valid(server, second.access_token)
    assert refresh(server, second.refresh_token).outcome == "rotated"


def test_absolute_lifetime_ignored_keeps_idle_ttl(server):
    """Broken absolute_lifetime_ignored: past the cap works, idle TTL still applies."""
    server.set_broken_modes(["absolute_lifetime_ignored"])
    current = grant(server)
    for _ in range(31):
        travel(server, 1439 * MINUTE)
        current = refresh(server, current.refresh_token)
    assert current.generation == 31

    travel(server, IDLE_TTL)
    assert refused(server, current.refresh_token) == "expired"


def test_idle_ttl_ignored_keeps_absolute_lifetime(server):
    """Broken idle_ttl_ignored: an idle token outlives its TTL, not the session."""
    server.set_broken_modes(["idle_ttl_ignored"])
    first = grant(server)
    travel(server, 2 * IDLE_TTL)
    second = refresh(server, first.refresh_token)

    travel(server, ABSOLUTE_LIFETIME - 2 * IDLE_TTL)

    assert refused(server, second.refresh_token) == "session_expired"


def test_burn_consumes_without_issuing(server):
    """Broken consume_on_failed_client_auth: burn() spends the token, issues nothing."""
    first = grant(server)

    server.authority.burn(first.refresh_token)
    server.authority.burn("garbage")

    lineage = server.authority.lineage(first.family_id)
    assert len(lineage["refresh_tokens"]) == 1
    assert lineage["refresh_tokens"][0]["consumed_at"] is not None
    assert refused(server, first.refresh_token) == "reuse_detected"


# ------------------------------------------------------------- atomicity

THREADS = 16


def _race(server: MockServer, rounds: int, stop_early: bool = False) -> list[int]:
    """Refresh one fresh token from THREADS threads per round; successes per round.

    Any exception other than InvalidGrant propagates and fails the test.
    """
    client = client_of(server)
    barrier = threading.Barrier(THREADS)
    wins: list[int] = []

    def attempt(token: str) -> bool:
        barrier.wait(timeout=10)
        try:
            server.authority.refresh(client, token, None)
        except InvalidGrant:
            return False
        return True

    with ThreadPoolExecutor(THREADS) as pool:
        for _ in range(rounds):
            token = grant(server).refresh_token
            wins.append(sum(pool.map(attempt, [token] * THREADS)))
            if stop_early and wins[-1] > 1:
                break
    return wins


def test_rotation_is_atomic_under_threads(server):
    """DESIGN atomic rotation / K24: one token, 16 parallel refreshes, one success."""
    wins = _race(server, rounds=50)

    assert wins == [1] * 50


def test_non_atomic_rotation_lets_parallel_refreshes_succeed(server):
    """Broken non_atomic_rotation: parallel refreshes of one token all may succeed."""
    server.set_broken_modes(["non_atomic_rotation"])

    wins = _race(server, rounds=50, stop_early=True)

    assert max(wins) > 1


# ------------------------------------------------------------------ tokens

TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]+")


def test_tokens_carry_at_least_128_bits():
    """STD-RT-23: tokens are url-safe base64 of at least 128 random bits."""
    for token in (new_token() for _ in range(20)):
        assert TOKEN_PATTERN.fullmatch(token)
        assert len(token) * 6 >= 128


def test_issued_tokens_are_url_safe_and_long(server):
    """STD-RT-23: the tokens a grant hands out have the same shape."""
    first = grant(server)
    for token in (first.refresh_token, first.access_token):
        assert TOKEN_PATTERN.fullmatch(token)
        assert len(token) >= 22


def test_thousand_tokens_are_unique():
    """STD-RT-23: 1000 tokens never repeat."""
    assert len({new_token() for _ in range(1000)}) == 1000


def _stored_text(server: MockServer) -> str:
    with server.store.transaction(write=False) as tx:
        records = {kind: tx.all(kind) for kind in KINDS}
    return json.dumps([records, server.store.events()])


@pytest.mark.parametrize("policy", [{"reuse_grace_period_in_seconds": GRACE}])
def test_store_never_holds_a_token_value(server):
    """DESIGN tokens stored hashed: no record, event or file byte holds a token."""
    first = grant(server)
    second = refresh(server, first.refresh_token, scope=["all-apis"])
    refresh(server, first.refresh_token)  # grace replay: a sealed response is kept
    third = refresh(server, second.refresh_token)
    server.authority.revoke(client_of(server), third.access_token)
    server.record({"endpoint": "token", "issued_fp": third.issued_fp})
    values = [
        value
        for tokens in (first, second, third)
        for value in (tokens.refresh_token, tokens.access_token)
    ]

    text = _stored_text(server)
    assert token_hash(first.refresh_token) in text
    blobs = [text]
    if isinstance(server.store, SQLiteStore):
        for path in Path(server.store.path).parent.glob("rotcert.db*"):
            blobs.append(path.read_bytes().decode("latin-1"))
    for blob in blobs:
        for value in values:
            assert value not in blob


def test_fingerprints_are_short_and_stable():
    """DESIGN events: a fingerprint names a token shortly, stably, and uniquely."""
    one, other = new_token(), new_token()

    assert fingerprint(one) == fingerprint(one)
    assert fingerprint(one) != fingerprint(other)
    assert fingerprint(one).startswith("fp:")
    assert len(fingerprint(one)) <= 16
    assert fingerprint(one)[3:] not in one


def test_seal_round_trip_and_wrong_key():
    """DESIGN grace same_successor: only the predecessor's holder can unseal."""
    predecessor = new_token()
    response = {"access_token": "a", "refresh_token": "r", "expires_in": 3600}

    sealed = seal(predecessor, response)

    assert "refresh_token" not in sealed
    assert unseal(predecessor, sealed) == response
    assert unseal(new_token(), sealed) is None
