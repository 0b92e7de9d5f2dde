"""Rotation itself: a new token each time, the right response, the old one dead."""

from __future__ import annotations

import pytest

from conformance.context import ServerScenario, not_applicable
from conformance.scenarios import EVERY, ROTATION


def needs_single_use(s: ServerScenario) -> None:
    if not s.policy.single_use:
        not_applicable("the declared policy has single-use refresh tokens off")


@pytest.mark.rotcert(
    id="S-ROT-01",
    requirement="STD-RT-33",
    profiles=ROTATION,
    catches=("no_rotation",),
)
def test_rotation_issues_a_new_refresh_token(server_scenario: ServerScenario):
    """Each refresh issues a new refresh token, different from the one presented."""
    s = server_scenario
    needs_single_use(s)
    family = s.new_family()

    for _ in range(3):
        presented = family.refresh_token
        body = s.rotate(family)
        issued = body.get("refresh_token")
        if not issued:
            s.fail("STD-RT-33", "the refresh response carries no refresh_token")
        if issued == presented:
            s.fail(
                "STD-RT-33",
                "the refresh response returned the presented refresh token again; "
                "single-use rotation must issue a new one",
            )

    if len(set(family.tokens)) != len(family.tokens):
        s.fail("STD-RT-23", "a refresh token value was issued twice in one family")


@pytest.mark.rotcert(
    id="S-ROT-02",
    requirement="STD-RT-10, STD-RT-11",
    profiles=EVERY,
    catches=("missing_no_store",),
)
def test_token_response_fields_and_headers(server_scenario: ServerScenario):
    """A refresh response has token_type Bearer, the declared expires_in, and
    Cache-Control: no-store."""
    s = server_scenario
    family = s.new_family()
    reply = s.refresh(family.refresh_token, step="refresh once and read the response")
    body = s.expect_ok(reply, "a refresh with a fresh token")

    if str(body.get("token_type", "")).lower() != "bearer":
        s.fail("STD-RT-10", f"token_type is {body.get('token_type')!r}, not Bearer")
    expires_in = body.get("expires_in")
    if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)):
        s.fail("STD-RT-10", f"expires_in is {expires_in!r}, not a JSON number")
    declared = s.policy.access_ttl
    if abs(expires_in - declared) > 5:
        s.fail(
            "STD-RT-10",
            f"expires_in is {expires_in} s; the declared access token TTL is "
            f"{declared} s",
        )
    cache = (reply.headers or {}).get("Cache-Control", "")
    if "no-store" not in cache.lower():
        s.fail(
            "STD-RT-11",
            f"a response carrying tokens lacks Cache-Control: no-store (got {cache!r})",
        )
    granted = set((family.scope or "").split())
    returned = set(str(body.get("scope", "")).split())
    if granted and returned - granted:
        s.fail(
            "STD-RT-27",
            "the refresh granted scope never granted: " + " ".join(returned - granted),
        )


@pytest.mark.rotcert(
    id="S-ROT-03",
    requirement="STD-RT-34",
    profiles=ROTATION,
    catches=("no_rotation", "reuse_accepted", "wrong_error_code"),
)
def test_consumed_token_is_rejected(server_scenario: ServerScenario):
    """A refresh token that was rotated out is rejected with the declared error."""
    s = server_scenario
    needs_single_use(s)
    family = s.new_family()
    first = family.refresh_token
    s.rotate(family)

    s.outlast_grace()
    reply = s.refresh(first, step="present the consumed generation-0 token again")
    s.expect_declared_error(reply, "the consumed token", "STD-RT-34")
    family.lineage.rejected(first, s.elapsed, reply.error or "")
