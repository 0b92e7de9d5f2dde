"""What a refresh request carries: the registered client authentication, once,
and no scope beyond the grant."""

from __future__ import annotations

import pytest

from conformance.client_scenarios import BOTH
from conformance.client_scenarios.harness import STRICT, ClientScenario
from conformance.context import not_applicable


@pytest.mark.rotcert(
    id="C-AUTH-01",
    requirement="STD-RT-C04, STD-RT-C05",
    profiles=BOTH,
    catches=("flawed-two-auth",),
)
def test_client_authentication_is_the_registered_method_once(
    client_scenario: ClientScenario,
):
    """Every refresh authenticates the client with its registered method, and with
    exactly one method."""
    s = client_scenario
    if s.mock.auth_method == "none":
        not_applicable("the declared client is public: there is nothing to send")
    s.use_policy(STRICT)
    s.step(f"the client is registered for {s.mock.auth_method}")
    s.seed()
    s.expire_access_token()
    step = s.call("call 1")

    s.expect(
        bool(step.refreshes()),
        "STD-RT-C04",
        "call 1 made no refresh, so its client authentication could not be judged.",
    )
    s.expect_exit(step, (0,), "STD-RT-C04", "The refresh should have succeeded.")
    s.finish(registered_auth=True)


@pytest.mark.rotcert(
    id="C-SCOPE-01",
    requirement="STD-RT-C03, STD-RT-C19",
    profiles=BOTH,
    catches=("flawed-broad-scope",),
)
def test_refresh_never_asks_for_more_scope_than_granted(
    client_scenario: ClientScenario,
):
    """When the server granted less scope than the client asked for, refreshes ask
    for no more than was granted."""
    s = client_scenario
    scopes = list(s.mock.integration.scopes)
    if len(scopes) < 2:
        not_applicable("the declared client has a single scope; nothing to narrow")
    s.use_policy(STRICT)
    s.seed(scope=scopes[0], requested_scope=" ".join(scopes))
    s.expire_access_token()
    step = s.call("call 1")

    s.expect_exit(
        step,
        (0,),
        "STD-RT-C03",
        "The refresh should succeed with the granted scope.",
    )
    s.finish()
