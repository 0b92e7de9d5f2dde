"""Fixtures of the client scenarios: the adapter, the mock server, one scenario.

The adapter comes from ROTCERT_ADAPTER (``rotcert client --adapter`` sets it): a
registered name, ``py:module:Class`` or a command. The declared policy
(``--rotcert-policy`` / ``--rotcert-preset``) is the base every scenario lays its
rotation rules over; ``--rotcert-client-auth`` is the registered client
authentication (basic or post); ``--rotcert-time`` is freeze (in-process
adapters, the default for them) or wait (real time, the only choice for a
command).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance import options
from conformance.adapters import Adapter, AdapterError, resolve
from conformance.plugin import RECORD, STATE
from conformance.target import TargetError, declared_integration

from .harness import ACTION_TIMEOUT_S, ClientScenario, MockHarness, frozen_or_real

ADAPTER_VARIABLE = "ROTCERT_ADAPTER"
TIMEOUT_VARIABLE = "ROTCERT_ACTION_TIMEOUT"


def _enabled(request: pytest.FixtureRequest) -> None:
    if request.config.stash.get(STATE, None) is None:
        pytest.skip("rotcert is not enabled (use rotcert client, or --rotcert-enable)")


@pytest.fixture(scope="session")
def client_adapter(request: pytest.FixtureRequest) -> Adapter:
    """The client under test, reached through its adapter."""
    _enabled(request)
    spec = os.environ.get(ADAPTER_VARIABLE, "")
    if not spec:
        pytest.exit(
            f"rotcert: no client adapter: set {ADAPTER_VARIABLE} (rotcert client "
            "--adapter does) to a registered name or a command",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )
    try:
        return resolve(spec)
    except AdapterError as exc:
        pytest.exit(f"rotcert: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)


@pytest.fixture(scope="session")
def client_mock(request: pytest.FixtureRequest) -> Iterator[MockHarness]:
    """The mock server, in a thread on loopback, under the declared policy."""
    _enabled(request)
    config = request.config
    try:
        integration = declared_integration(
            options.option(config, "policy"), options.option(config, "preset")
        )
    except TargetError as exc:
        pytest.exit(f"rotcert: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
    auth = options.option(config, "client-auth") or "basic"
    if auth not in ("basic", "post"):
        pytest.exit(
            f"rotcert: --rotcert-client-auth for a client run is basic or post, not "
            f"{auth!r} (a public client is declared with confidential: false)",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )
    harness = MockHarness.start(integration, auth)
    yield harness
    harness.stop()


def _timeout() -> float:
    raw = os.environ.get(TIMEOUT_VARIABLE)
    try:
        return float(raw) if raw else ACTION_TIMEOUT_S
    except ValueError:
        raise pytest.UsageError(
            f"{TIMEOUT_VARIABLE} must be a number of seconds, got {raw!r}"
        ) from None


@pytest.fixture
def client_scenario(
    request: pytest.FixtureRequest,
    client_mock: MockHarness,
    client_adapter: Adapter,
    tmp_path: Path,
) -> Iterator[ClientScenario]:
    """One client scenario: a reset server, a fresh state directory, a clock."""
    record = request.node.stash.get(RECORD, None)
    if record is None:
        raise pytest.UsageError(f"{request.node.nodeid} has no @pytest.mark.rotcert")
    try:
        clock = frozen_or_real(client_adapter, options.option(request.config, "time"))
    except ValueError as exc:
        pytest.exit(f"rotcert: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
    client_mock.server.reset()
    scenario = ClientScenario(
        client_mock, client_adapter, record, tmp_path / "state", clock, _timeout()
    )
    clock.begin()
    try:
        yield scenario
    finally:
        clock.end()
        scenario.close()
