"""Lifetimes: the idle TTL at both edges, its renewal, and the absolute cap."""

from __future__ import annotations

import pytest

from conformance.context import ServerScenario, not_applicable
from conformance.scenarios import EVERY, ROTATION
from conformance.scenarios.test_rotation import needs_single_use
from conformance.timecontrol import human

LIFETIMES = ("databricks",)


def idle_ttl(s: ServerScenario) -> int:
    """The declared idle TTL, when it is what ends an unused token."""
    idle, absolute = s.policy.refresh_ttl, s.policy.absolute_lifetime
    if absolute is not None and absolute <= idle:
        not_applicable(
            f"the absolute lifetime ({human(absolute)}) ends tokens before their "
            f"idle TTL ({human(idle)})"
        )
    return idle


@pytest.mark.rotcert(
    id="S-IDLE-01",
    requirement="STD-RT-39",
    profiles=(*LIFETIMES, "multi-use"),
    catches=(),
)
def test_unused_token_lives_its_idle_ttl(server_scenario: ServerScenario):
    """An unused refresh token still works 1 s before its idle TTL ends."""
    s = server_scenario
    idle = idle_ttl(s)
    s.needs_time(idle - 1, "waiting out the idle TTL")
    family = s.new_family()
    s.advance(idle - 1, f"1 s before the idle TTL of {human(idle)}")
    s.rotate(family, "refresh just inside the idle TTL")


@pytest.mark.rotcert(
    id="S-IDLE-02",
    requirement="STD-RT-39",
    profiles=(*LIFETIMES, "multi-use"),
    catches=("idle_ttl_ignored", "wrong_error_code"),
)
def test_unused_token_dies_at_its_idle_ttl(server_scenario: ServerScenario):
    """An unused refresh token is rejected 1 s after its idle TTL ends."""
    s = server_scenario
    idle = idle_ttl(s)
    s.needs_time(idle + 1, "waiting out the idle TTL")
    family = s.new_family()
    s.advance(idle + 1, f"1 s past the idle TTL of {human(idle)}")
    token = family.refresh_token
    reply = s.refresh(token, step="refresh just after the idle TTL")
    s.expect_declared_error(reply, "a refresh token past its idle TTL", "STD-RT-39")
    family.lineage.rejected(token, s.elapsed, reply.error or "")


@pytest.mark.rotcert(
    id="S-IDLE-03",
    requirement="STD-RT-39",
    profiles=LIFETIMES,
    catches=("no_rotation",),
)
def test_rotation_renews_the_idle_ttl(server_scenario: ServerScenario):
    """Each rotated token gets the idle TTL afresh (Databricks: renewed per token)."""
    s = server_scenario
    needs_single_use(s)
    idle = s.policy.refresh_ttl
    absolute = s.policy.absolute_lifetime
    if absolute is not None and absolute <= 2 * idle:
        not_applicable("the absolute lifetime is too short to see a renewed idle TTL")
    s.needs_time(2 * idle - 61, "two idle TTLs back to back")
    family = s.new_family()
    s.advance(idle - 60, "1 min before generation 0's idle TTL ends")
    s.rotate(family, requirement="STD-RT-39")
    s.advance(idle - 1, "1 s before generation 1's own idle TTL ends")
    s.rotate(
        family,
        "the successor lives its full idle TTL from its own issue",
        requirement="STD-RT-39",
    )


@pytest.mark.rotcert(
    id="S-ABS-01",
    requirement="STD-RT-41",
    profiles=LIFETIMES,
    catches=("absolute_lifetime_ignored", "no_rotation", "wrong_error_code"),
)
def test_absolute_lifetime_caps_the_session(server_scenario: ServerScenario):
    """Rotating just inside the idle TTL, the session still ends at the absolute
    lifetime: 1 s before it a refresh works, 1 s after it a brand-new token fails."""
    s = server_scenario
    needs_single_use(s)
    absolute = s.policy.absolute_lifetime
    if absolute is None:
        not_applicable("the declared policy has no absolute session lifetime")
    idle = s.policy.refresh_ttl
    step = max(1, min(idle, absolute) - 60)
    s.needs_time(absolute + 1, "living through the whole session")
    family = s.new_family()

    spent = 0
    while spent + step < absolute - 1:
        s.advance(step, "rotate just inside the idle TTL")
        spent += step
        why = f"keep the session alive (generation {family.generation})"
        s.rotate(family, why, requirement="STD-RT-41")
    s.advance(absolute - 1 - spent, "1 s before the absolute session lifetime ends")
    s.rotate(family, "the last refresh inside the session", requirement="STD-RT-41")
    s.advance(2, f"1 s past the absolute lifetime of {human(absolute)}")

    token = family.refresh_token
    reply = s.refresh(token, step="refresh with the brand-new token past the cap")
    s.expect_declared_error(
        reply,
        f"a token issued 1 s before the session's end, used after it (the session "
        f"began {human(absolute + 1)} ago)",
        "STD-RT-41",
    )
    family.lineage.rejected(token, s.elapsed, reply.error or "")


@pytest.mark.rotcert(
    id="S-MULTI-01",
    requirement="STD-RT-31",
    profiles=("multi-use",),
    catches=(),
)
def test_multi_use_token_keeps_working(server_scenario: ServerScenario):
    """With single-use off, the refresh token keeps working as declared."""
    s = server_scenario
    if s.policy.single_use:
        not_applicable("the declared policy has single-use refresh tokens on")
    family = s.new_family()
    original = family.refresh_token
    declared = s.policy.non_rotating_response

    for round_ in range(3):
        reply = s.refresh(original, step=f"refresh with the original token ({round_})")
        body = s.expect_ok(reply, "a refresh with a multi-use token", "STD-RT-31")
        returned = body.get("refresh_token")
        if declared == "same" and returned not in (None, original):
            s.fail("STD-RT-31", "declared 'same' but a different refresh token came")
        if declared == "omit" and returned is not None:
            s.fail("STD-RT-31", "declared 'omit' but the response has refresh_token")
        if declared == "new_token_old_valid" and returned in (None, original):
            s.fail("STD-RT-31", "declared a new token each time, but none came")
        if returned and returned != original:
            s.http.redactor.add(returned, "refresh_token")
            family.lineage.issued(returned, round_ + 1, s.elapsed)


__all__ = ["EVERY", "ROTATION"]
