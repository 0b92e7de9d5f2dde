"""When refreshing can no longer work: a dead refresh token, the end of the
session, and a refresh whose answer was lost after the server committed it."""

from __future__ import annotations

import pytest

from conformance.client_scenarios import BOTH, DATABRICKS, SINGLE_USE
from conformance.client_scenarios.harness import GRACE, STRICT, ClientScenario

FINAL = (
    "A refused refresh token never works again: the client must say that the "
    "user has to log in (exit 3), not fail in some other way."
)


def _dead_token_is_final(s: ClientScenario) -> None:
    s.seed()
    s.revoke_grant("the user disconnected the app")
    s.expire_access_token()
    first = s.call("call 1")
    second = s.call("call 2", "a new process")

    s.expect_exit(first, (3,), "STD-RT-C13", FINAL)
    s.expect_exit(second, (3,), "STD-RT-C13", FINAL)
    tries = len(first.refreshes())
    s.expect(
        tries <= 1,
        "STD-RT-C13",
        f"call 1 presented the dead refresh token {tries} times; the first refusal "
        "is final: no retry loop.",
    )
    s.finish()


@pytest.mark.rotcert(
    id="C-TERM-01",
    requirement="STD-RT-C13",
    profiles=(SINGLE_USE,),
    catches=("flawed-retry-loop",),
)
def test_invalid_grant_is_final(client_scenario: ClientScenario):
    """400 invalid_grant ends the session: one attempt, re-authentication reported,
    the dead token never presented again."""
    s = client_scenario
    s.use_policy(STRICT, invalid_refresh_token_error="rfc6749")
    _dead_token_is_final(s)


@pytest.mark.rotcert(
    id="C-TERM-02",
    requirement="STD-RT-C13",
    profiles=(DATABRICKS,),
    catches=("flawed-retry-loop", "flawed-invalid-grant-only"),
)
def test_databricks_invalid_request_is_final(client_scenario: ClientScenario):
    """Databricks' 400 invalid_request "Refresh token is invalid" ends the session
    like invalid_grant does."""
    s = client_scenario
    s.use_policy(STRICT, invalid_refresh_token_error="databricks")
    _dead_token_is_final(s)


@pytest.mark.rotcert(
    id="C-LIFE-01",
    requirement="STD-RT-C13",
    profiles=BOTH,
    catches=("naive", "flawed-retry-loop"),
)
def test_absolute_session_lifetime_ends_in_clean_reauthentication(
    client_scenario: ClientScenario,
):
    """When the absolute session lifetime is over, the client asks for a login once
    and stops refreshing."""
    s = client_scenario
    policy = s.use_policy(STRICT)
    lifetime = 4 * policy.access_ttl
    s.use_policy(STRICT, absolute_session_lifetime_in_seconds=lifetime)
    s.seed()
    s.expire_access_token()
    first = s.call("call 1", "rotates once")
    s.advance_server(lifetime, "past the absolute session lifetime")
    s.expire_access_token()
    second = s.call("call 2", "after the session ended")
    third = s.call("call 3", "a new process")

    s.expect_exit(first, (0,), "STD-RT-C01", "The refresh should have succeeded.")
    s.expect_exit(second, (3,), "STD-RT-C13", FINAL)
    s.expect_exit(third, (3,), "STD-RT-C13", FINAL)
    s.finish()


@pytest.mark.rotcert(
    id="C-LOST-01",
    requirement="STD-RT-C15",
    profiles=BOTH,
    catches=("flawed-retry-loop",),
)
def test_lost_refresh_response_strict_ends_in_clean_reauthentication(
    client_scenario: ClientScenario,
):
    """Strict server, refresh answer lost after commit: the client may retry once,
    then asks for a login and never uses the dead token again."""
    s = client_scenario
    s.use_policy(STRICT)
    s.seed()
    s.expire_access_token()
    s.fault(
        "drop_response_after_commit",
        "the next refresh is committed, then its answer is lost (502)",
        count=1,
    )
    s.call("call 1", "the refresh answer is lost")
    s.call("call 2", "a new process")
    last = s.call("call 3", "a new process")

    s.expect_exit(
        last,
        (3,),
        "STD-RT-C15",
        "The successor was lost and a strict server refuses the old token: the only "
        "clean way out is re-authentication.",
    )
    s.finish()


@pytest.mark.rotcert(
    id="C-LOST-02",
    requirement="STD-RT-C15",
    profiles=(SINGLE_USE,),
    catches=("naive",),
)
def test_lost_refresh_response_recovers_through_grace(
    client_scenario: ClientScenario,
):
    """With a 30 s grace period a lost refresh answer is recovered (or ends in a
    clean re-authentication), and the old token is not used after recovery."""
    s = client_scenario
    s.use_policy(GRACE)
    s.seed()
    s.expire_access_token()
    s.fault(
        "drop_response_after_commit",
        "the next refresh is committed, then its answer is lost (502)",
        count=1,
    )
    s.call("call 1", "the refresh answer is lost")
    s.call("call 2", "a new process")
    s.expire_access_token()
    last = s.call("call 3", "a new process")

    s.expect_exit(
        last,
        (0, 3),
        "STD-RT-C15",
        "After a lost answer the client must either recover (a retry inside the "
        "grace period returns the successor) or ask for a login; not stay broken.",
    )
    s.finish()
