"""Reuse detection: a consumed token presented again revokes its family."""

from __future__ import annotations

import pytest

from conformance.context import ServerScenario, cannot_check, not_applicable
from conformance.scenarios import ROTATION
from conformance.scenarios.test_rotation import needs_single_use

REUSE_CATCHES = ("no_rotation", "reuse_accepted", "family_not_revoked")


def _revoked(s: ServerScenario, family, token: str, what: str) -> None:
    reply = s.refresh(token, step=f"use {what}")
    s.expect_rejected(
        reply,
        f"{what} after reuse was detected (RFC 9700 §4.14.2: the family must be "
        "revoked)",
        "STD-RT-35",
    )
    family.lineage.revoked(token, s.elapsed)


@pytest.mark.rotcert(
    id="S-REUSE-01",
    requirement="STD-RT-34, STD-RT-35",
    profiles=ROTATION,
    catches=REUSE_CATCHES,
)
def test_reuse_revokes_family_legitimate_first(server_scenario: ServerScenario):
    """Legitimate client first: replaying the consumed token revokes the successor."""
    s = server_scenario
    needs_single_use(s)
    family = s.new_family()
    stolen = family.refresh_token
    s.rotate(family, "the legitimate client rotates generation 0")

    s.outlast_grace()
    reply = s.refresh(stolen, step="an attacker replays the consumed generation 0")
    s.expect_rejected(reply, "the replayed generation 0", "STD-RT-34")
    family.lineage.rejected(stolen, s.elapsed, reply.error or "")

    _revoked(s, family, family.refresh_token, "the legitimate client's generation 1")


@pytest.mark.rotcert(
    id="S-REUSE-02",
    requirement="STD-RT-34, STD-RT-35",
    profiles=ROTATION,
    catches=REUSE_CATCHES,
)
def test_reuse_revokes_family_attacker_first(server_scenario: ServerScenario):
    """Attacker first: the victim's replay revokes the attacker's successor."""
    s = server_scenario
    needs_single_use(s)
    family = s.new_family()
    original = family.refresh_token
    s.rotate(family, "an attacker rotates the stolen generation 0 first")

    s.outlast_grace()
    reply = s.refresh(original, step="the victim presents its (now consumed) token")
    s.expect_rejected(reply, "the victim's consumed generation 0", "STD-RT-34")
    family.lineage.rejected(original, s.elapsed, reply.error or "")

    _revoked(s, family, family.refresh_token, "the attacker's generation 1")


@pytest.mark.rotcert(
    id="S-REUSE-03",
    requirement="STD-RT-34, STD-RT-36",
    profiles=("oauth21",),
    catches=REUSE_CATCHES,
)
def test_reuse_revokes_family_access_tokens(server_scenario: ServerScenario):
    """Reuse also revokes the grant's access tokens (OAuth 2.1 §4.3.1)."""
    s = server_scenario
    needs_single_use(s)
    if not (s.target.endpoints.introspection or s.target.endpoints.resource):
        cannot_check("no introspection endpoint or protected resource to ask")
    family = s.new_family()
    first = family.refresh_token
    s.rotate(family)
    access = family.access_token
    if s.access_alive(access, "the newest access token") is not True:
        s.fail(
            "STD-RT-54",
            "the newest access token is not accepted even before any reuse; "
            "nothing can be concluded",
        )

    s.outlast_grace()
    reply = s.refresh(first, step="replay the consumed generation 0")
    s.expect_rejected(reply, "the replayed generation 0", "STD-RT-34")
    family.lineage.rejected(first, s.elapsed, reply.error or "")

    alive = s.access_alive(access, "the newest access token after reuse")
    if alive is None:
        cannot_check("the target gave no usable answer about the access token")
    if alive:
        s.fail(
            "STD-RT-36",
            "after reuse was detected the family's newest access token is still "
            "accepted; OAuth 2.1 revokes the whole grant",
        )


@pytest.mark.rotcert(
    id="S-FAM-01",
    requirement="STD-RT-34, STD-RT-35",
    profiles=ROTATION,
    catches=("no_rotation", "reuse_accepted"),
)
def test_families_are_independent(server_scenario: ServerScenario):
    """Reuse in one family leaves another family of the same user and client alive."""
    s = server_scenario
    needs_single_use(s)
    if s.policy.reuse_detection != "revoke_family":
        not_applicable("the declared policy does not revoke families on reuse")
    victim = s.new_family(label="A")
    bystander = s.new_family(label="B")
    stolen = victim.refresh_token
    s.rotate(victim, "family A rotates")
    s.outlast_grace()
    reply = s.refresh(stolen, step="replay family A's consumed token")
    s.expect_rejected(reply, "family A's replayed token", "STD-RT-34")
    victim.lineage.rejected(stolen, s.elapsed, reply.error or "")

    s.rotate(bystander, "family B, same user and client, must still rotate")
