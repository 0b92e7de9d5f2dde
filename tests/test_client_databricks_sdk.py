"""The Databricks SDK for Python as a client of the mock in Databricks mode: its
own browser login (made headless), its token cache across restarts and its
refresh, over the Databricks paths (host metadata, /oidc discovery,
/oidc/v1/token) and the Databricks error body."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.adapters import ActionResult, InProcessAdapter
from conformance.adapters.compat import SDK_CAUSES, run_suites
from conformance.audit import is_refresh, result_of
from conformance.client_scenarios.harness import (
    MockHarness,
    SharedFrozenTime,
    catalogue,
)
from mock_server.policy import load_policy, load_preset

pytest.importorskip("databricks.sdk")

from conformance.adapters.lib_databricks_sdk import (  # noqa: E402
    DatabricksSdkAdapter,
)

ACCESS_TTL_S = 60 * 60  # the databricks preset: access tokens live 60 minutes


@pytest.fixture(scope="module")
def mock() -> Iterator[MockHarness]:
    harness = MockHarness.start(load_preset("databricks"), "post")
    yield harness
    harness.stop()


def _set_policy(mock: MockHarness, single_use: bool) -> None:
    """The preset's policy, with single-use refresh tokens on or off."""
    registered = mock.server.client(mock.client_id)
    assert registered is not None
    document = mock.integration.policy.to_json()
    document["enable_single_use_refresh_tokens"] = single_use
    registered.policy_json = load_policy(document).to_json()
    mock.server.save_client(registered)


@pytest.fixture
def clock(mock: MockHarness) -> Iterator[SharedFrozenTime]:
    _set_policy(mock, single_use=True)
    mock.server.reset()
    clock = SharedFrozenTime()
    clock.begin()
    yield clock
    clock.end()


class Client:
    """The SDK driven through its adapter: one new instance per action."""

    def __init__(self, mock: MockHarness, state_dir: Path) -> None:
        self.mock = mock
        self.adapter = InProcessAdapter(DatabricksSdkAdapter, "databricks-sdk")
        self.env = mock.env(state_dir, " ".join(mock.integration.scopes))
        self.seen = 0

    def run(self, action: str) -> ActionResult:
        self.seen = len(self.mock.server.store.events())
        return self.adapter.run(action, self.env)

    def token_events(self) -> list[dict]:
        events = self.mock.server.store.events(self.seen)
        return [e for e in events if e.get("endpoint") == "token"]


@pytest.fixture
def client(mock: MockHarness, clock: SharedFrozenTime, tmp_path: Path) -> Client:
    return Client(mock, tmp_path / "state")


def _cache_files(state_dir: Path) -> list[Path]:
    return sorted((state_dir / ".config" / "databricks-sdk-py" / "oauth").glob("*"))


def test_login_then_restart_and_refresh_through_the_databricks_paths(
    client: Client, clock: SharedFrozenTime
):
    """STD-RT-C01: the SDK's login writes its token cache in the state directory;
    a restarted client uses the cached access token without a token request, and
    once it has expired refreshes it at /oidc/v1/token and gets a successor."""
    login = client.run("login")

    assert login.ok, login.describe() + login.stderr
    assert login.output["discovery_url"].endswith(
        "/oidc/.well-known/oauth-authorization-server"
    )
    exchange = client.token_events()
    assert [e["grant_type"] for e in exchange] == ["authorization_code"]
    assert exchange[0]["status"] == 200
    assert len(_cache_files(client.env.state_dir)) == 1

    restarted = client.run("call")

    assert restarted.ok, restarted.describe() + restarted.stderr
    assert client.token_events() == []

    clock.pass_time(ACCESS_TTL_S)
    refreshed = client.run("call")

    assert refreshed.ok, refreshed.describe() + refreshed.stderr
    refreshes = [e for e in client.token_events() if is_refresh(e)]
    assert [result_of(e) for e in refreshes] == ["rotated"]
    assert refreshes[0]["presented_fp"] == exchange[0]["issued_fp"]


def test_restart_after_a_rotation_presents_the_consumed_token(
    client: Client, clock: SharedFrozenTime
):
    """STD-RT-C01, measured gap: the SDK never writes a refreshed token back to its
    cache, so the next process presents the consumed refresh token, gets
    Databricks' 400 invalid_request "Refresh token is invalid" and falls back to
    its browser login (exit 3)."""
    assert client.run("login").ok
    clock.pass_time(ACCESS_TTL_S)
    assert client.run("call").ok
    consumed = next(e for e in client.token_events() if is_refresh(e))

    clock.pass_time(ACCESS_TTL_S)
    after = client.run("call")

    assert after.reauth, after.describe() + after.stderr
    assert "Refresh token is invalid" in (after.message or "")
    [again] = [e for e in client.token_events() if is_refresh(e)]
    assert again["presented_fp"] == consumed["presented_fp"]
    assert (again["status"], again["error"]) == (400, "invalid_request")


def test_with_reusable_refresh_tokens_every_restart_refreshes(
    client: Client, clock: SharedFrozenTime, mock: MockHarness
):
    """STD-RT-C02: with single-use refresh tokens off the SDK's cached refresh
    token keeps working across restarts: each restarted client refreshes once."""
    _set_policy(mock, single_use=False)
    assert client.run("login").ok

    for _ in range(3):
        clock.pass_time(ACCESS_TTL_S)
        result = client.run("call")

        assert result.ok, result.describe() + result.stderr
        refreshes = [e for e in client.token_events() if is_refresh(e)]
        assert [result_of(e) for e in refreshes] == ["kept"]


def test_call_without_a_cached_token_asks_for_a_login(client: Client):
    """STD-RT-C13: with an empty token cache the SDK starts its browser login; the
    adapter reports that the user must log in (exit 3) and no token request is
    made."""
    result = client.run("call")

    assert result.reauth, result.describe() + result.stderr
    assert client.token_events() == []


def test_every_measured_failure_has_a_cause_and_no_cause_is_stale(tmp_path: Path):
    """docs/client-compatibility.md: rotcert client runs every scenario against the
    SDK, each failure carries a one-line cause for its maintainers, and every
    curated cause is for a failure that was measured."""
    [summary] = run_suites(["databricks-sdk"], tmp_path).values()
    outcomes = {s["scenario_id"]: s["outcome"] for s in summary["scenarios"]}
    failed = {sid for sid, outcome in outcomes.items() if outcome == "failed"}

    assert set(outcomes) == set(catalogue())
    assert set(outcomes.values()) <= {"passed", "failed"}
    assert failed == {sid for name, sid in SDK_CAUSES if name == "databricks-sdk"}
