"""Rotation: the newest refresh token is used, also across restarts; an omitted
refresh token is kept; unknown response members are ignored."""

from __future__ import annotations

import pytest

from conformance.client_scenarios import BOTH, SINGLE_USE
from conformance.client_scenarios.harness import NON_ROTATING, STRICT, ClientScenario

ROTATED = "After a rotation the client must use the new refresh token (RFC 6749 §6)."


@pytest.mark.rotcert(
    id="C-ROT-01",
    requirement="STD-RT-C01",
    profiles=BOTH,
    catches=("naive",),
)
def test_newest_refresh_token_is_used_after_rotation_and_restart(
    client_scenario: ClientScenario,
):
    """After a rotation the client presents the newest refresh token, also after
    a restart."""
    s = client_scenario
    s.use_policy(STRICT)
    s.seed()
    s.expire_access_token()
    first = s.call("call 1")
    s.expire_access_token()
    second = s.call("call 2", "a new process")

    s.expect(
        len(first.refreshes()) >= 1,
        "STD-RT-C01",
        "call 1 made no refresh although its access token had expired.",
    )
    s.expect_exit(first, (0,), "STD-RT-C01", "The refresh should have succeeded.")
    s.expect_exit(second, (0,), "STD-RT-C01", ROTATED)
    s.finish()


@pytest.mark.rotcert(
    id="C-OMIT-01",
    requirement="STD-RT-C02",
    profiles=(SINGLE_USE,),
    catches=("flawed-drops-omitted",),
)
def test_omitted_refresh_token_keeps_the_old_one(client_scenario: ClientScenario):
    """A refresh response without refresh_token (a non-rotating server) keeps the
    stored refresh token, which is presented again on the next refresh."""
    s = client_scenario
    s.use_policy(NON_ROTATING, non_rotating_response="omit")
    s.seed()
    s.expire_access_token()
    first = s.call("call 1", "the refresh response has no refresh_token")
    s.expire_access_token()
    second = s.call("call 2", "a new process")

    s.expect_exit(first, (0,), "STD-RT-C02", "The refresh should have succeeded.")
    kept = s.expect_exit(
        second,
        (0,),
        "STD-RT-C02",
        "The response to call 1 left refresh_token out, which RFC 6749 §6 allows: "
        "the client must keep the refresh token it already holds instead of "
        "dropping it or asking the user to log in.",
    )
    presented = [e["presented_fp"] for e in second.refreshes()]
    if kept:
        s.expect(
            presented[:1] == [s.seeded_fp],
            "STD-RT-C02",
            f"call 2 should have presented the original refresh token "
            f"{s.seeded_fp} again; it presented {presented or 'nothing'}.",
        )
    s.finish()


@pytest.mark.rotcert(
    id="C-UNK-01",
    requirement="STD-RT-C09, STD-RT-C10",
    profiles=BOTH,
    catches=("naive", "flawed-strict-token-type"),
)
def test_unknown_members_and_lowercase_token_type_are_accepted(
    client_scenario: ClientScenario,
):
    """Token responses with unknown members and token_type "bearer" are used
    normally, across two rotations."""
    s = client_scenario
    s.use_policy(STRICT)
    s.fault("extra_unknown_fields", "token responses carry unknown members")
    s.fault("lowercase_token_type", 'token_type is "bearer", lower case')
    s.seed(
        extra={
            "token_type": "bearer",
            "rotcert_unknown_member": {"nested": [1, 2, 3]},
            "refresh_token_expires_in": 86400,
        },
        requirement="STD-RT-C09, STD-RT-C10",
    )
    s.expire_access_token()
    first = s.call("call 1")
    s.expire_access_token()
    second = s.call("call 2", "a new process")

    why = (
        "Unknown response members must be ignored (RFC 6749 §5.1) and token_type "
        "is case-insensitive (RFC 6749 §5.1, RFC 6750)."
    )
    s.expect_exit(first, (0,), "STD-RT-C09", why)
    s.expect_exit(second, (0,), "STD-RT-C09", why)
    s.finish()
