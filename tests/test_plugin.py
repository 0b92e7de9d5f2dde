"""The pytest plugin, black-box with pytester (issue 3, "Plugin" and "Reaching a
server"): inert until used, activated by option, ini key or variable, the shipped
catalogue collected, usage errors stated, pytest-xdist, out-of-process targets and
the grant sources."""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

# hypothesis, werkzeug.test and conformance.session are imported here, once, so
# that pytester's in-process runs (which drop modules first imported inside them)
# share one copy of requests and werkzeug, and do not import hypothesis (loaded by
# its plugin) afresh each run.
import hypothesis  # noqa: F401
import pytest
import requests
import werkzeug.test  # noqa: F401

import conformance.session
from conformance.plugin import SCENARIOS_DIR
from mock_server import MockServer, load_integration
from mock_server.serve import start_in_thread

pytest_plugins = ["pytester"]

DATABRICKS = {
    "access_token_ttl_in_minutes": 60,
    "refresh_token_ttl_in_minutes": 1440,
    "enable_single_use_refresh_tokens": True,
    "absolute_session_lifetime_in_minutes": 43200,
}
MULTI_USE = {**DATABRICKS, "enable_single_use_refresh_tokens": False}
GRACE = {**DATABRICKS, "reuse_grace_period_in_seconds": 30}

# The catalogue as its source declares it, so that scenarios added later count.
SCENARIO_SOURCES = sorted(SCENARIOS_DIR.glob("test_*.py"))
SCENARIO_FUNCTIONS = {
    name
    for path in SCENARIO_SOURCES
    for name in re.findall(r"^def (test_\w+)\(", path.read_text(), re.MULTILINE)
}
SCENARIO_IDS = {
    found
    for path in SCENARIO_SOURCES
    for found in re.findall(r'\bid="(S-[A-Z0-9-]+)"', path.read_text())
}

# One scenario in every profile, for runs that only need to see the plugin act.
ONE_SCENARIO = "test_token_response_fields_and_headers"


@pytest.fixture(autouse=True)
def no_rotcert_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The caller's ROTCERT_* variables must not leak into the runs under test."""
    for name in [n for n in os.environ if n.startswith("ROTCERT_")]:
        monkeypatch.delenv(name)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # pytest-benchmark warns under xdist; the project disables it too.
    return pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-p", "no:benchmark", *args
    )


def output(result: pytest.RunResult) -> str:
    return result.stdout.str() + "\n" + result.stderr.str()


def write_policy(pytester: pytest.Pytester, policy: dict, name: str = "policy") -> Path:
    path = pytester.path / f"{name}.json"
    path.write_text(json.dumps({"confidential": True, "token_access_policy": policy}))
    return path


def collected(result: pytest.RunResult) -> set[str]:
    """Test function names listed by ``--collect-only -q``."""
    return {
        line.rpartition("::")[2]
        for line in result.outlines
        if "::" in line and not line.startswith(" ")
    }


def outcomes(summary: dict) -> dict[str, str]:
    return {s["scenario_id"]: s["outcome"] for s in summary["scenarios"]}


def closed_port() -> int:
    """A loopback port nothing listens on: connections to it are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def mock() -> Iterator[tuple[str, MockServer]]:
    """A rotcert mock in another thread, reached over HTTP like any server."""
    server = MockServer()
    url, stop = start_in_thread(server)
    yield url, server
    stop()


def mock_with(policy: dict) -> MockServer:
    return MockServer(load_integration({"token_access_policy": policy}))


# ---------------------------------------------------------------------- inert


USER_TESTS = """
    def test_mine():
        assert 1 + 1 == 2

    def test_also_mine():
        assert "rotation"
"""


@pytest.mark.parametrize(
    "ini, env",
    [
        ("", {}),
        ("", {"ROTCERT_ENABLE": "0"}),
        ("rotcert_enable = false", {}),
    ],
    ids=["nothing", "ROTCERT_ENABLE=0", "rotcert_enable-false"],
)
def test_plugin_is_inert_when_unused(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ini: str, env: dict
):
    """Issue 3 (Plugin): installed but unused, rotcert never disturbs someone
    else's suite: their tests run, nothing is added, no target is built."""
    pytester.makepyfile(test_user=USER_TESTS)
    pytester.makeini(f"[pytest]\n{ini}\n")
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    def refuse(*args, **kwargs):
        raise AssertionError("rotcert built its session or a target while unused")

    monkeypatch.setattr(conformance.session.RotcertSession, "__init__", refuse)
    monkeypatch.setattr(MockServer, "__init__", refuse)

    result = run(pytester)

    assert result.ret == pytest.ExitCode.OK, output(result)
    assert result.parseoutcomes() == {"passed": 2}
    shown = [
        line
        for line in output(result).splitlines()
        if "rotcert" in line.lower() and not line.startswith("plugins:")
    ]
    assert shown == []


# ----------------------------------------------------------------- activation


@pytest.mark.parametrize(
    "args, ini, env, profile",
    [
        (["--rotcert-enable"], "", {}, "rfc9700"),
        (["--rotcert-race-rounds=2"], "", {}, "rfc9700"),
        ([], "rotcert_enable = true", {}, "rfc9700"),
        ([], "rotcert_policy = policy.json", {}, "multi-use"),
        ([], "rotcert_timeout = 5", {}, "rfc9700"),
        ([], "", {"ROTCERT_ENABLE": "1"}, "rfc9700"),
        ([], "", {"ROTCERT_POLICY": "policy.json"}, "multi-use"),
    ],
    ids=[
        "option-flag",
        "option-with-default",
        "ini-enable",
        "ini-policy",
        "ini-with-default",
        "env-enable",
        "env-policy",
    ],
)
def test_activation(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    ini: str,
    env: dict,
    profile: str,
):
    """Issue 3 (Plugin): an option, its ini key or its ROTCERT_* variable switches
    rotcert on; the shipped catalogue runs and the declared policy is used."""
    write_policy(pytester, MULTI_USE)
    pytester.makeini(f"[pytest]\n{ini}\n")
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    result = run(pytester, "-k", ONE_SCENARIO, *args)

    assert result.ret == pytest.ExitCode.OK, output(result)
    counts = result.parseoutcomes()
    assert counts["passed"] == 1
    assert counts["deselected"] == len(SCENARIO_FUNCTIONS) - 1
    text = result.stdout.str()
    assert "rotcert verdict" in text
    # -k makes the verdict incomplete; the profile names show the policy used.
    verdict_lines = re.findall(r"^(\S+)\s+(?:NOT )?CERTIFIED", text, re.MULTILINE)
    assert profile in verdict_lines
    other = "rfc9700" if profile == "multi-use" else "multi-use"
    assert other not in verdict_lines


def test_shipped_catalogue_is_collected_when_no_path_is_given(
    pytester: pytest.Pytester,
):
    """Issue 3 (Plugin): scenarios ship inside the package and the plugin collects
    them when no path is given; the user's own tests are not collected then."""
    pytester.makepyfile(test_user=USER_TESTS)

    result = run(pytester, "--rotcert-enable", "--collect-only", "-q")

    assert result.ret == pytest.ExitCode.OK, output(result)
    assert collected(result) == SCENARIO_FUNCTIONS


def test_pyargs_collects_the_catalogue(pytester: pytest.Pytester):
    """Issue 3 (Plugin): ``--pyargs conformance.scenarios`` collects the same
    catalogue."""
    result = run(
        pytester,
        "--rotcert-enable",
        "--pyargs",
        "conformance.scenarios",
        "--collect-only",
        "-q",
    )

    assert result.ret == pytest.ExitCode.OK, output(result)
    assert collected(result) == SCENARIO_FUNCTIONS


def test_explicit_path_runs_only_that_path(pytester: pytest.Pytester):
    """Issue 3 (Plugin): the catalogue replaces only an absent path; a path the
    user gives is run as given."""
    pytester.makepyfile(test_user=USER_TESTS)

    result = run(pytester, "--rotcert-enable", "test_user.py")

    assert result.ret == pytest.ExitCode.OK, output(result)
    assert result.parseoutcomes() == {"passed": 2}


# --------------------------------------------------------------- usage errors

BAD_POLICY = {**DATABRICKS, "access_token_ttl_in_minutes": 2}
URL_TARGET = [
    "--rotcert-token-endpoint=http://127.0.0.1:{closed}/token",
    "--rotcert-client-id=vendor-client",
]

USAGE_ERRORS = {
    "zero-timeout": (
        ["--rotcert-timeout=0"],
        {},
        ["--rotcert-timeout must be at least 0.01"],
    ),
    "one-race-thread": (
        ["--rotcert-race-threads=1"],
        {},
        ["--rotcert-race-threads must be at least 2"],
    ),
    "bogus-client-auth": (
        ["--rotcert-client-auth=bogus"],
        {},
        ["--rotcert-client-auth is basic, post or none"],
    ),
    "unknown-profile": (
        ["--rotcert-profile=rfc9700,nope"],
        {},
        ["unknown profile 'nope'", "rfc9700", "multi-use"],
    ),
    "policy-and-preset": (
        ["--rotcert-policy=policy.json", "--rotcert-preset=okta"],
        {},
        ["--rotcert-policy or --rotcert-preset, not both"],
    ),
    "bad-policy-file": (
        ["--rotcert-policy=bad.json"],
        {},
        ["access_token_ttl_in_minutes", "is 2", "5 to 1440"],
    ),
    "non-numeric-timeout": (
        ["--rotcert-timeout=ten"],
        {},
        ["--rotcert-timeout must be a number", "'ten'"],
    ),
    "infinite-race-threads": (
        ["--rotcert-race-threads=inf"],
        {},
        ["--rotcert-race-threads must be a finite number", "'inf'"],
    ),
    "freeze-against-url": (
        [
            *URL_TARGET,
            "--rotcert-grant-source=file:grants.json",
            "--rotcert-time=freeze",
        ],
        {"ROTCERT_CLIENT_SECRET": "vendor-secret-value"},
        ["--rotcert-time freeze needs the embedded target"],
    ),
    "unknown-broken-mode": (
        ["--rotcert-broken-mode=nope"],
        {},
        ["unknown broken mode 'nope'", "reuse_accepted"],
    ),
    "unreachable-issuer": (
        ["--rotcert-issuer=http://127.0.0.1:{closed}/realm"],
        {},
        [
            "Cannot reach the issuer http://127.0.0.1:{closed}/realm: no answer "
            "from GET http://127.0.0.1:{closed}/realm/.well-known/"
            "oauth-authorization-server: connection refused (is the server "
            "running?)",
        ],
    ),
    "missing-client-secret": (
        URL_TARGET,
        {},
        [
            "client 'vendor-client'",
            "ROTCERT_CLIENT_SECRET is not set",
            "give --rotcert-client-auth none for a public client",
        ],
    ),
    "url-target-without-address": (
        ["--rotcert-target=url"],
        {},
        ["--rotcert-target url needs --rotcert-issuer"],
    ),
    "unknown-grant-source": (
        ["--rotcert-grant-source=carrier-pigeon"],
        {},
        ["unknown grant source 'carrier-pigeon'", "file:PATH"],
    ),
    "grant-file-without-refresh-tokens": (
        [*URL_TARGET, "--rotcert-grant-source=file:empty.json"],
        {"ROTCERT_CLIENT_SECRET": "vendor-secret-value"},
        ["grant file 'empty.json' holds no token response with a refresh_token"],
    ),
}


@pytest.mark.parametrize("case", sorted(USAGE_ERRORS))
def test_usage_error_is_stated_without_a_traceback(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, case: str
):
    """Issue 3 (Plugin) and DESIGN (Policy): a usage error ends the run with
    pytest's usage-error status and one message that says what to fix."""
    args, env, fragments = USAGE_ERRORS[case]
    closed = closed_port()
    write_policy(pytester, DATABRICKS)
    write_policy(pytester, BAD_POLICY, "bad")
    grant = {"access_token": "a" * 43, "refresh_token": "r" * 43, "expires_in": 3600}
    (pytester.path / "grants.json").write_text(json.dumps([grant]))
    (pytester.path / "empty.json").write_text(json.dumps([{"access_token": "a"}]))
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    result = run(pytester, *(a.format(closed=closed) for a in args))

    text = output(result)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, text
    for fragment in fragments:
        assert fragment.format(closed=closed) in text
    assert "Traceback" not in text
    assert "INTERNALERROR" not in text
    assert not re.search(r"\d+ passed", result.stdout.str())


# -------------------------------------------------------------------- xdist


def test_xdist_gives_the_same_verdict_built_once(pytester: pytest.Pytester):
    """Issue 3 (Plugin): the scenarios are independent, so ``-n 2`` gives the
    serial verdict, and the controller alone builds the summary and report."""
    common = ["--rotcert-race-rounds=3"]
    serial = run(pytester, *common, "--rotcert-summary=serial.json")
    assert serial.ret == pytest.ExitCode.OK, output(serial)

    result = run(
        pytester,
        *common,
        "-n",
        "2",
        "--rotcert-summary=parallel.json",
        "--html=report.html",
        "--self-contained-html",
    )

    assert result.ret == pytest.ExitCode.OK, output(result)
    assert "2 workers" in result.stdout.str()
    parallel = json.loads((pytester.path / "parallel.json").read_text())
    before = json.loads((pytester.path / "serial.json").read_text())
    assert {s["scenario_id"] for s in parallel["scenarios"]} == SCENARIO_IDS
    assert outcomes(parallel) == outcomes(before)
    statuses = [(v["profile"], v["status"]) for v in parallel["verdicts"]]
    assert statuses == [(v["profile"], v["status"]) for v in before["verdicts"]]
    assert result.stdout.str().count("rotcert verdict") == 1
    report = (pytester.path / "report.html").read_text()
    assert report.count('class="rotcert-verdicts"') == 1
    # Each worker's scenario sections reach the one report.
    assert report.count("rotcert-scenario") == len(SCENARIO_IDS)


# ------------------------------------------------------ out-of-process mock


def test_out_of_process_mock_is_certified_through_discovery(
    pytester: pytest.Pytester, mock: tuple[str, MockServer]
):
    """DESIGN (Time, Driving targets): a rotcert mock in another process is found
    by discovery, families come from its admin API and time moves through its
    admin clock; it is certified for every default profile."""
    url, server = mock

    result = run(
        pytester,
        f"--rotcert-issuer={url}",
        "--rotcert-race-rounds=3",
        "--rotcert-summary=summary.json",
    )

    assert result.ret == pytest.ExitCode.OK, output(result)
    summary = json.loads((pytester.path / "summary.json").read_text())
    assert summary["target"]["embedded"] is False
    assert summary["target"]["token_endpoint"] == url + "/token"
    assert [v["status"] for v in summary["verdicts"]] == ["CERTIFIED"] * 3
    minted = [e for e in server.store.events(0) if e["endpoint"] == "admin_grant"]
    assert len(minted) > 10
    # S-ABS-01 simulates the 43,200-minute absolute lifetime in full.
    assert server.clock.offset() >= 43200 * 60


def test_time_scenarios_without_a_wait_budget_cannot_be_checked(
    pytester: pytest.Pytester,
):
    """Issue 3 (Reaching a server): when time can only pass for real and the
    budget is 0, time scenarios are skipped as "cannot check" and every verdict
    is incomplete - never silently passed."""
    server = mock_with(GRACE)
    url, stop = start_in_thread(server)
    policy = write_policy(pytester, GRACE)
    try:
        result = run(
            pytester,
            f"--rotcert-issuer={url}",
            f"--rotcert-policy={policy}",
            "--rotcert-time=wait",
            "--rotcert-wait-budget=0",
            "--rotcert-race-rounds=3",
            "--rotcert-summary=summary.json",
        )
    finally:
        stop()

    assert result.ret == pytest.ExitCode.OK, output(result)
    summary = json.loads((pytester.path / "summary.json").read_text())
    statuses = {v["profile"]: v["status"] for v in summary["verdicts"]}
    assert statuses == dict.fromkeys(
        ["rfc9700", "oauth21", "databricks"], "NOT CERTIFIED (incomplete)"
    )
    by_id = {s["scenario_id"]: s for s in summary["scenarios"]}
    needs_time = {"S-IDLE-01", "S-IDLE-02", "S-IDLE-03", "S-ABS-01", "S-GRACE-01"}
    needs_time |= {"S-ROT-03", "S-REUSE-01", "S-REUSE-02", "S-FAM-01"}  # past grace
    for scenario_id in needs_time:
        scenario = by_id[scenario_id]
        assert scenario["outcome"] == "skipped", scenario_id
        assert (
            scenario["reason"].startswith("cannot check: ")
            and "of real waiting" in scenario["reason"]
        ), scenario
        assert "wait budget is 0 s" in scenario["reason"]
    assert not any(s["simulated_s"] for s in summary["scenarios"])
    assert server.clock.offset() == 0


# ------------------------------------------------------------- grant sources


def mint_via_admin(url: str, count: int) -> list[dict]:
    return [
        requests.post(url + "/admin/grants", json={}, timeout=5).json()
        for _ in range(count)
    ]


def test_file_grant_source_skips_what_its_supply_cannot_cover(
    pytester: pytest.Pytester, mock: tuple[str, MockServer]
):
    """Issue 3 (Reaching a server): with a file of tokens, scenarios beyond the
    file's supply are skipped with that reason, and the verdict is incomplete."""
    url, _ = mock
    grants = pytester.path / "grants.jsonl"
    grants.write_text("".join(json.dumps(g) + "\n" for g in mint_via_admin(url, 2)))

    result = run(
        pytester,
        f"--rotcert-issuer={url}",
        f"--rotcert-grant-source=file:{grants}",
        "--rotcert-summary=summary.json",
        "--pyargs",
        "conformance.scenarios.test_rotation",
    )

    assert result.ret == pytest.ExitCode.OK, output(result)
    summary = json.loads((pytester.path / "summary.json").read_text())
    assert outcomes(summary) == {
        "S-ROT-01": "passed",
        "S-ROT-02": "passed",
        "S-ROT-03": "skipped",
    }
    reason = {s["scenario_id"]: s["reason"] for s in summary["scenarios"]}["S-ROT-03"]
    assert reason.startswith("cannot check: the grant file")
    assert str(grants) in reason and "no fresh family left" in reason
    statuses = {v["status"] for v in summary["verdicts"]}
    assert statuses == {"NOT CERTIFIED (incomplete)"}


COMMAND = """
    import json, pathlib, sys, urllib.request

    url, log = sys.argv[1], pathlib.Path(sys.argv[2])
    request = urllib.request.Request(
        url + "/admin/grants", data=b"{}", method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        body = json.load(answer)
    with log.open("a") as out:
        out.write(body["family_id"] + "\\n")
    print(json.dumps(body))
"""


def test_command_grant_source_mints_a_family_per_scenario(
    pytester: pytest.Pytester, mock: tuple[str, MockServer]
):
    """Issue 3 (Reaching a server): a user command that prints a token response
    mints a fresh family for each scenario."""
    url, server = mock
    script = pytester.path / "mint.py"
    script.write_text(textwrap.dedent(COMMAND))
    log = pytester.path / "minted.log"

    result = run(
        pytester,
        f"--rotcert-issuer={url}",
        f"--rotcert-grant-source=command:{sys.executable} {script} {url} {log}",
        "--rotcert-summary=summary.json",
        "--pyargs",
        "conformance.scenarios.test_rotation",
    )

    assert result.ret == pytest.ExitCode.OK, output(result)
    summary = json.loads((pytester.path / "summary.json").read_text())
    assert set(outcomes(summary).values()) == {"passed"}
    families = log.read_text().split()
    # One family per scenario, plus the preflight check's at the start.
    assert len(families) == len(set(families)) == 3 + 1
    minted = {e["family_id"] for e in server.store.events(0) if e.get("family_id")}
    assert set(families) <= minted


def test_authcode_grant_source_follows_an_auto_approving_server(
    pytester: pytest.Pytester, mock: tuple[str, MockServer]
):
    """Issue 3 (Reaching a server): the authorization-code flow (PKCE) is
    followed automatically when the server approves without a user."""
    url, server = mock

    result = run(
        pytester,
        f"--rotcert-issuer={url}",
        "--rotcert-grant-source=authcode",
        "--rotcert-redirect-uri=http://127.0.0.1:9/cb",
        "--rotcert-summary=summary.json",
        "--pyargs",
        "conformance.scenarios.test_rotation",
    )

    assert result.ret == pytest.ExitCode.OK, output(result)
    summary = json.loads((pytester.path / "summary.json").read_text())
    assert set(outcomes(summary).values()) == {"passed"}
    events = server.store.events(0)
    assert not [e for e in events if e["endpoint"] == "admin_grant"]
    codes = [e for e in events if e.get("grant_type") == "authorization_code"]
    # One code per scenario, plus the preflight check's at the start.
    assert len(codes) == 3 + 1 and {e["status"] for e in codes} == {200}


def test_selection_never_certifies(pytester: pytest.Pytester):
    """Issue 3 (Verdict): -k picks scenarios by id, and a verdict on part of a
    profile is incomplete, never certified."""
    result = run(pytester, "--rotcert-enable", "-k", "S-ROT-01 or S-REUSE-02")

    counts = result.parseoutcomes()
    assert counts["passed"] == 2
    text = result.stdout.str()
    assert re.search(r"^rfc9700\s+NOT CERTIFIED \(incomplete\)", text, re.MULTILINE)
    assert "S-AUTH-01: cannot check: deselected" in text


def test_command_grant_source_learns_its_client(pytester: pytest.Pytester):
    """Issue 3 (Reaching a server): a grant command is told which client, token
    endpoint and scope it mints for."""
    seen = pytester.path / "seen.json"
    script = pytester.makepyfile(
        mint=f"""
        import json, os, sys
        keys = ("ROTCERT_CLIENT_ID", "ROTCERT_TOKEN_ENDPOINT")
        open({str(seen)!r}, "w").write(json.dumps({{k: os.environ[k] for k in keys}}))
        print(json.dumps({{"access_token": "a" * 43, "refresh_token": "r" * 43}}))
        """
    )
    run(
        pytester,
        "--rotcert-enable",
        f"--rotcert-grant-source=command:{sys.executable} {script}",
        "-k",
        "S-ROT-01",
    )

    env = json.loads(seen.read_text())
    assert env["ROTCERT_CLIENT_ID"] == "rotcert-client"
    assert env["ROTCERT_TOKEN_ENDPOINT"].endswith("/token")
