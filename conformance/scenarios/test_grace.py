"""The grace period: vendor practice (Okta, Auth0, Hydra, Cognito), not RFC.

A consumed token replayed within the declared grace is tolerated, at both edges,
and grace never reaches beyond the immediate predecessor.
"""

from __future__ import annotations

import pytest

from conformance.context import ServerScenario, cannot_check, not_applicable
from conformance.scenarios import ROTATION
from conformance.scenarios.test_rotation import needs_single_use


def needs_grace(s: ServerScenario) -> int:
    needs_single_use(s)
    if s.policy.grace <= 0:
        not_applicable("the declared policy has no grace period")
    return s.policy.grace


@pytest.mark.rotcert(
    id="S-GRACE-01",
    requirement="STD-RT-38, K3",
    profiles=ROTATION,
    catches=("no_rotation", "reuse_accepted"),
)
def test_replay_inside_grace_is_tolerated_at_both_edges(
    server_scenario: ServerScenario,
):
    """A replay 1 s before the grace ends is tolerated; 1 s after, it is reuse."""
    s = server_scenario
    grace = needs_grace(s)
    s.needs_time(2 * grace, "both edges of the grace period")

    inside = s.new_family(label="inside grace")
    predecessor = inside.refresh_token
    first = s.rotate(inside)
    s.advance(grace - 1, "1 s before the grace period ends")
    reply = s.refresh(predecessor, step="replay the predecessor inside grace")
    body = s.expect_ok(reply, "a replay inside the declared grace period", "K3")
    again = body.get("refresh_token")
    if s.policy.grace_response == "same_successor" and again != first.get(
        "refresh_token"
    ):
        s.fail(
            "K24",
            "the declared grace response is the same successor, but the replay "
            "returned a different refresh token",
        )
    if s.policy.grace_response == "new_pair" and again == first.get("refresh_token"):
        s.fail(
            "K24",
            "the declared grace response is a new pair, but the replay returned "
            "the same refresh token",
        )

    outside = s.new_family(label="after grace")
    predecessor = outside.refresh_token
    s.rotate(outside)
    s.advance(grace + 1, "1 s after the grace period ends")
    reply = s.refresh(predecessor, step="replay the predecessor after grace")
    s.expect_rejected(reply, "a replay after the grace period", "STD-RT-34")
    outside.lineage.rejected(predecessor, s.elapsed, reply.error or "")


@pytest.mark.rotcert(
    id="S-GRACE-02",
    requirement="STD-RT-34, K3",
    profiles=ROTATION,
    catches=("no_rotation", "reuse_accepted"),
)
def test_grace_covers_only_the_immediate_predecessor(server_scenario: ServerScenario):
    """Inside grace, an older generation (two rotations back) is still reuse."""
    s = server_scenario
    needs_grace(s)
    family = s.new_family()
    oldest = family.refresh_token
    s.rotate(family, "rotate generation 0")
    s.rotate(family, "rotate generation 1 at once")

    reply = s.refresh(oldest, step="replay generation 0, two generations back")
    s.expect_rejected(
        reply,
        "generation 0 after generation 2 exists (django-oauth-toolkit #1617)",
        "STD-RT-34",
    )
    family.lineage.rejected(oldest, s.elapsed, reply.error or "")


@pytest.mark.rotcert(
    id="S-GRACE-03",
    requirement="STD-RT-46, K3",
    profiles=("oauth21",),
    catches=(),
)
def test_grace_never_covers_a_revoked_token(server_scenario: ServerScenario):
    """A token revoked through RFC 7009 gets no grace."""
    s = server_scenario
    needs_grace(s)
    if not s.target.endpoints.revocation:
        cannot_check("the target has no revocation endpoint")
    family = s.new_family()
    predecessor = family.refresh_token
    s.rotate(family)

    form, auth = s.target.client.form_and_auth()
    form.update(token=predecessor, token_type_hint="refresh_token")
    s.step("revoke the consumed predecessor through RFC 7009")
    reply = s.http.post_form(
        s.target.endpoints.revocation, form, auth=auth, step="revoke the predecessor"
    )
    if reply.status != 200:
        s.fail("STD-RT-51", "revocation did not answer 200: " + s.what_happened(reply))
    family.lineage.revoked(predecessor, s.elapsed)

    reply = s.refresh(predecessor, step="replay the revoked predecessor inside grace")
    s.expect_rejected(reply, "a revoked token inside grace", "STD-RT-46")
