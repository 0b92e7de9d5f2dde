"""Certify real authorization servers with ``rotcert server`` and pin the verdicts.

Each configuration starts its own server on 127.0.0.1, declares the policy that
matches the configuration, and expects exactly the verdicts measured and
published in docs/server-compatibility.md. All runs go in parallel to keep the
module near 40 s (the grace configurations wait for real).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .conftest import DOT_DIR, OIDC_DIR, RunningServer, start_dot, start_oidc, wait_all

RUN_TIMEOUT = 150.0

# Failures every django-oauth-toolkit 3.4.1 configuration shows (see the docs).
DOT_AUTH_MAL = ["S-AUTH-01", "S-MAL-01"]
NO_FAMILY_REVOKE = ["S-REUSE-01", "S-REUSE-02"]
DOT_IDLE = ["S-IDLE-01", "S-IDLE-02", "S-IDLE-03"]
OIDC_IDLE = ["S-IDLE-01", "S-IDLE-02", "S-IDLE-03"]


@dataclass(frozen=True)
class Expected:
    status: str
    failed: list[str] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Configuration:
    name: str
    server: str  # dot | oidc-provider
    settings: dict[str, str]
    policy: Path
    expected: dict[str, Expected]


NOT = "NOT CERTIFIED"
INCOMPLETE = "NOT CERTIFIED (incomplete)"

CONFIGURATIONS = [
    Configuration(
        "dot-rotate-reuse-protection",
        "dot",
        {"DOT_REFRESH_TOKEN_REUSE_PROTECTION": "1"},
        DOT_DIR / "policies" / "rotate-reuse-protection.json",
        {
            "rfc9700": Expected(NOT, [*DOT_AUTH_MAL, "S-RACE-01"]),
            "oauth21": Expected(NOT, [*DOT_AUTH_MAL, "S-RACE-01", "S-SCOPE-02"]),
            "databricks": Expected(INCOMPLETE, [*DOT_AUTH_MAL, "S-RACE-01"], DOT_IDLE),
        },
    ),
    Configuration(
        "dot-rotate-default",
        "dot",
        {},
        DOT_DIR / "policies" / "rotate-default.json",
        {
            "rfc9700": Expected(NOT, [*DOT_AUTH_MAL, "S-RACE-01", *NO_FAMILY_REVOKE]),
            "oauth21": Expected(
                NOT,
                [
                    *DOT_AUTH_MAL,
                    "S-RACE-01",
                    *NO_FAMILY_REVOKE,
                    "S-REUSE-03",
                    "S-SCOPE-02",
                ],
            ),
            "databricks": Expected(
                INCOMPLETE, [*DOT_AUTH_MAL, "S-RACE-01", *NO_FAMILY_REVOKE], DOT_IDLE
            ),
        },
    ),
    Configuration(
        "dot-rotate-reuse-protection-grace",
        "dot",
        {
            "DOT_REFRESH_TOKEN_REUSE_PROTECTION": "1",
            "DOT_REFRESH_TOKEN_GRACE_PERIOD_SECONDS": "3",
        },
        DOT_DIR / "policies" / "rotate-reuse-protection-grace.json",
        {
            "rfc9700": Expected(NOT, DOT_AUTH_MAL),
            "oauth21": Expected(NOT, [*DOT_AUTH_MAL, "S-GRACE-03", "S-SCOPE-02"]),
            "databricks": Expected(INCOMPLETE, DOT_AUTH_MAL, DOT_IDLE),
        },
    ),
    Configuration(
        "dot-rotate-grace",
        "dot",
        {"DOT_REFRESH_TOKEN_GRACE_PERIOD_SECONDS": "3"},
        DOT_DIR / "policies" / "rotate-grace.json",
        {
            "rfc9700": Expected(NOT, [*DOT_AUTH_MAL, *NO_FAMILY_REVOKE]),
            "oauth21": Expected(
                NOT,
                [
                    *DOT_AUTH_MAL,
                    "S-GRACE-03",
                    *NO_FAMILY_REVOKE,
                    "S-REUSE-03",
                    "S-SCOPE-02",
                ],
            ),
            "databricks": Expected(
                INCOMPLETE, [*DOT_AUTH_MAL, *NO_FAMILY_REVOKE], DOT_IDLE
            ),
        },
    ),
    Configuration(
        "dot-no-rotation",
        "dot",
        {
            "DOT_ROTATE_REFRESH_TOKEN": "0",
            "DOT_ACCESS_TOKEN_EXPIRE_SECONDS": "2",
            "DOT_REFRESH_TOKEN_EXPIRE_SECONDS": "3",
        },
        DOT_DIR / "policies" / "no-rotation.json",
        {
            "multi-use": Expected(NOT, ["S-MAL-01"]),
            "databricks": Expected(NOT, DOT_AUTH_MAL),
        },
    ),
    Configuration(
        "oidc-provider-rotate",
        "oidc-provider",
        {"OIDC_ROTATE": "1"},
        OIDC_DIR / "policies" / "rotate.json",
        {
            "rfc9700": Expected("CERTIFIED"),
            "oauth21": Expected("CERTIFIED"),
            "databricks": Expected(INCOMPLETE, [], OIDC_IDLE),
        },
    ),
    Configuration(
        "oidc-provider-no-rotation",
        "oidc-provider",
        {"OIDC_ROTATE": "0"},
        OIDC_DIR / "policies" / "no-rotation.json",
        {
            "multi-use": Expected(INCOMPLETE, [], ["S-IDLE-01", "S-IDLE-02"]),
            "databricks": Expected(INCOMPLETE, [], ["S-IDLE-01", "S-IDLE-02"]),
        },
    ),
]


def _start(config: Configuration, logs: Path) -> RunningServer:
    if config.server == "dot":
        return start_dot(config.name, config.settings, logs)
    return start_oidc(config.name, config.settings["OIDC_ROTATE"] == "1", logs)


def _rotcert_argv(config: Configuration, server: RunningServer, out: Path):
    """The ``rotcert server`` command line, and its secrets for the environment."""
    ready = server.ready
    first, second = ready["clients"]
    argv = [
        sys.executable,
        "-m",
        "conformance.cli",
        "server",
        f"--policy={config.policy}",
        f"--client-id={first['client_id']}",
        f"--second-client-id={second['client_id']}",
        "--time=wait",
        "--wait-budget=10",
        f"--out={out}",
    ]
    env = {
        "ROTCERT_CLIENT_SECRET": first["client_secret"],
        "ROTCERT_SECOND_CLIENT_SECRET": second["client_secret"],
    }
    if config.server == "dot":
        argv += [
            f"--token-endpoint={ready['token_endpoint']}",
            f"--revocation-endpoint={ready['revocation_endpoint']}",
            f"--introspection-endpoint={ready['introspection_endpoint']}",
            "--grant-source=password",
            f"--username={ready['username']}",
            "--scope=read write",
        ]
        env["ROTCERT_PASSWORD"] = ready["password"]
    else:
        grant = OIDC_DIR / "grant.py"
        argv += [
            f"--issuer={ready['issuer']}",
            f"--grant-source=command:{sys.executable} {grant} {ready['issuer']}",
            "--scope=openid offline_access",
        ]
    return argv, env


@pytest.fixture(scope="module")
def verdicts(
    servers: list[RunningServer], interop_logs: Path
) -> dict[str, dict[str, Any]]:
    """Start every configuration's server, certify them all in parallel, and
    return each run's exit code, summary and server version by name."""
    for config in CONFIGURATIONS:
        servers.append(_start(config, interop_logs))

    runs = {}
    for config, server in zip(CONFIGURATIONS, servers, strict=True):
        out = interop_logs / f"{config.name}-report"
        argv, env = _rotcert_argv(config, server, out)
        with (interop_logs / f"{config.name}-rotcert.log").open("w") as log:
            process = subprocess.Popen(
                argv,
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=interop_logs,
            )
        runs[config.name] = (process, out, server)
    wait_all([process for process, _, _ in runs.values()], RUN_TIMEOUT)

    results = {}
    for name, (process, out, server) in runs.items():
        summary = out / "summary.json"
        results[name] = {
            "code": process.returncode,
            "summary": json.loads(summary.read_text()) if summary.exists() else None,
            "version": server.ready["version"],
            "log": interop_logs / f"{name}-rotcert.log",
        }
    return results


@pytest.mark.parametrize("config", CONFIGURATIONS, ids=lambda c: c.name)
def test_verdict_follows_the_configuration(config: Configuration, verdicts):
    """rotcert's verdict for each real server configuration is exactly the one
    measured and published in docs/server-compatibility.md."""
    run = verdicts[config.name]
    assert run["summary"] is not None, (
        f"rotcert wrote no summary (exit {run['code']}):\n"
        + run["log"].read_text()[-3000:]
    )
    measured = {
        v["profile"]: Expected(
            v["status"],
            sorted(f["id"] for f in v["failed"]),
            sorted(f["id"] for f in v["not_run"]),
        )
        for v in run["summary"]["verdicts"]
    }
    wanted = {
        profile: Expected(e.status, sorted(e.failed), sorted(e.not_run))
        for profile, e in config.expected.items()
    }
    reasons = {
        f["id"]: f["reason"]
        for v in run["summary"]["verdicts"]
        for f in v["failed"] + v["not_run"]
    }
    assert measured == wanted, json.dumps(reasons, indent=1)
    certified = all(e.status == "CERTIFIED" for e in wanted.values())
    assert run["code"] == (0 if certified else 1)


def test_pinned_versions(verdicts):
    """The table names the versions measured; a silent upgrade must show."""
    assert verdicts["dot-rotate-default"]["version"] == "3.4.1"
    assert verdicts["oidc-provider-rotate"]["version"] == "9.13.3"
