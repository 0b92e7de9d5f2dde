"""One refresh in flight per refresh token: among parallel requests of one
process, and among processes that share one token store."""

from __future__ import annotations

import pytest

from conformance.client_scenarios import BOTH, SINGLE_USE
from conformance.client_scenarios.harness import GRACE, STRICT, ClientScenario

PARALLEL = 5
SINGLE_FLIGHT = (
    "Serialize refreshes (single-flight): one request refreshes, the others wait "
    "and use its result (RFC 9700 §4.14.2: a second use looks like theft)."
)


def _parallel_calls(s: ClientScenario, rotation: str) -> None:
    s.use_policy(rotation)
    s.seed()
    s.expire_access_token()
    s.hold_token_responses()
    step = s.call("call 1", concurrency=PARALLEL)

    redeemed = [e for e in step.refreshes() if e["presented_fp"] == s.seeded_fp]
    s.expect(
        len(redeemed) == 1,
        "STD-RT-C14",
        f"{PARALLEL} parallel requests in one process made {len(redeemed)} refresh "
        f"requests with the same token {s.seeded_fp}; expected exactly one. "
        + SINGLE_FLIGHT,
    )
    s.expect_exit(step, (0,), "STD-RT-C14", "Every parallel request should succeed.")
    s.finish()


@pytest.mark.rotcert(
    id="C-PAR-01",
    requirement="STD-RT-C14",
    profiles=BOTH,
    catches=("flawed-no-single-flight",),
)
def test_parallel_requests_refresh_once(client_scenario: ClientScenario):
    """Five parallel requests with an expired access token cause one refresh."""
    _parallel_calls(client_scenario, STRICT)


@pytest.mark.rotcert(
    id="C-PAR-02",
    requirement="STD-RT-C14",
    profiles=(SINGLE_USE,),
    catches=("flawed-no-single-flight",),
)
def test_parallel_requests_refresh_once_with_grace(client_scenario: ClientScenario):
    """With a 30 s grace period, five parallel requests still cause one refresh."""
    _parallel_calls(client_scenario, GRACE)


def _two_processes(s: ClientScenario, rotation: str) -> None:
    s.use_policy(rotation)
    s.seed()
    s.expire_access_token()
    s.hold_token_responses()
    step = s.call_together("calls 1 and 2", processes=2)

    redeemed = [e for e in step.refreshes() if e["presented_fp"] == s.seeded_fp]
    s.expect(
        len(redeemed) == 1,
        "STD-RT-C14",
        f"two processes sharing one state directory made {len(redeemed)} refresh "
        f"requests with the same token {s.seeded_fp}; expected one. Lock the token "
        "store across processes, re-read it under the lock, and refresh only if "
        "the stored access token is still the expired one.",
    )
    s.expect_exit(step, (0,), "STD-RT-C14", "Both processes should succeed.")
    s.finish()


@pytest.mark.rotcert(
    id="C-XPROC-01",
    requirement="STD-RT-C14",
    profiles=BOTH,
    catches=("flawed-no-file-lock", "flawed-no-single-flight"),
)
def test_two_processes_do_not_redeem_one_token(client_scenario: ClientScenario):
    """Two processes sharing one state directory do not both redeem one refresh
    token."""
    _two_processes(client_scenario, STRICT)


@pytest.mark.rotcert(
    id="C-XPROC-02",
    requirement="STD-RT-C14",
    profiles=(SINGLE_USE,),
    catches=("flawed-no-file-lock", "flawed-no-single-flight"),
)
def test_two_processes_do_not_redeem_one_token_with_grace(
    client_scenario: ClientScenario,
):
    """With a 30 s grace period, two processes sharing one state directory still
    do not both redeem one refresh token."""
    _two_processes(client_scenario, GRACE)
