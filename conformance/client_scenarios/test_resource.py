"""The protected resource: 401 handling, expiry anchored at receipt, and the
refresh token kept away from it."""

from __future__ import annotations

import pytest

from conformance.client_scenarios import BOTH
from conformance.client_scenarios.harness import STRICT, ClientScenario


@pytest.mark.rotcert(
    id="C-401-01",
    requirement="STD-RT-C11",
    profiles=BOTH,
    catches=("flawed-no-401-refresh",),
)
def test_401_invalid_token_triggers_one_refresh_and_retry(
    client_scenario: ClientScenario,
):
    """A 401 invalid_token for an access token that looks fresh leads to one
    refresh and one retry, which succeeds."""
    s = client_scenario
    s.use_policy(STRICT, keep_access_fresh=True)
    s.seed()
    s.fault(
        "resource_invalid_token",
        "the resource refuses the next request with 401 invalid_token",
        count=1,
    )
    step = s.call("call 1")

    resource = step.resource_requests()
    refused = next(
        (i for i, e in enumerate(step.events) if e.get("status") == 401), None
    )
    after = step.events[refused + 1 :] if refused is not None else []
    refreshed = sum(1 for e in after if e.get("endpoint") == "token")
    served = any(
        e.get("endpoint") == "resource" and e.get("status") == 200 for e in after
    )
    s.expect(
        refused is not None,
        "STD-RT-C11",
        f"the resource never answered 401 (requests: {len(resource)}).",
    )
    s.expect(
        refreshed == 1 and served,
        "STD-RT-C11",
        f"after the resource's 401 invalid_token the client made {refreshed} refresh "
        f"request(s) and {'a' if served else 'no'} successful retry; expected one "
        "refresh and one retry. An access token can be refused before its "
        "expires_in runs out (OAuth 2.1 §3.2.3).",
    )
    s.expect_exit(step, (0,), "STD-RT-C11", "The retry with a new token succeeds.")
    s.finish()


@pytest.mark.rotcert(
    id="C-401-02",
    requirement="STD-RT-C12",
    profiles=BOTH,
    catches=("flawed-401-loop",),
)
def test_401_forever_gives_at_most_one_refresh(client_scenario: ClientScenario):
    """A resource that always answers 401 gets at most one refresh and one retry
    per call, and the call reports an error."""
    s = client_scenario
    s.use_policy(STRICT, keep_access_fresh=True)
    s.seed()
    s.fault("resource_invalid_token", "the resource answers 401 to every request")
    step = s.call("call 1")

    refreshes = len(step.refreshes())
    requests = len(step.resource_requests())
    s.expect(
        refreshes <= 1 and requests <= 2,
        "STD-RT-C12",
        f"the call made {refreshes} refresh requests and {requests} resource "
        "requests against a resource that keeps answering 401; expected at most "
        "one refresh and one retry (RFC 6750 §3.1: retry once, no loop).",
    )
    s.expect(
        all(not r.ok for r in step.results),
        "STD-RT-C12",
        "the call reported success although every resource request was refused.",
    )
    s.finish()


@pytest.mark.rotcert(
    id="C-EXP-01",
    requirement="STD-RT-C20",
    profiles=BOTH,
    catches=("flawed-load-time-expiry",),
)
def test_expiry_is_anchored_at_receipt(client_scenario: ClientScenario):
    """A token restored from storage after its lifetime is not taken as fresh: the
    client refreshes before using it."""
    s = client_scenario
    s.use_policy(STRICT)
    s.seed()
    s.expire_access_token("the client restarts later")
    step = s.call("call 1", "a new process")

    resource = step.resource_requests()
    first = resource[0] if resource else None
    s.expect(
        first is None or first.get("reason") != "expired",
        "STD-RT-C20",
        "the restored client sent its expired access token to the resource (401 "
        "expired): its expiry was counted from when it was loaded, not from when it "
        "was received. Store an absolute expiry (expires_at) when the token "
        "arrives.",
    )
    s.expect_exit(step, (0,), "STD-RT-C20", "The client should refresh and succeed.")
    s.finish()


@pytest.mark.rotcert(
    id="C-RS-01",
    requirement="STD-RT-C08",
    profiles=BOTH,
    catches=("flawed-rt-to-resource",),
)
def test_refresh_token_never_reaches_the_resource(client_scenario: ClientScenario):
    """The resource server never sees the refresh token, before or after a
    rotation."""
    s = client_scenario
    s.use_policy(STRICT)
    s.seed()
    first = s.call("call 1")
    s.expire_access_token()
    second = s.call("call 2", "a new process")

    s.expect_exit(first, (0,), "STD-RT-C08", "The call should succeed.")
    s.expect_exit(second, (0,), "STD-RT-C08", "The call should succeed.")
    s.finish()
