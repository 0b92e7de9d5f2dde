"""The client compatibility table: exactly what the suite measured, per adapter.

    python -m conformance.adapters.compat --write docs/client-compatibility.md

runs ``rotcert client`` once per reference adapter (in parallel processes),
reads each summary.json and writes a Markdown table: one row per scenario, one
column per client, the verdict per profile, and for every failure of a real
library a one-line cause its maintainers can act on. The causes are curated here
and checked against the measurement by the project's tests: a cause for a
scenario that passes, or a failure without a cause, fails them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from . import LIBRARIES

__all__ = [
    "CAUSES",
    "COLUMNS",
    "MEASURED_WITH",
    "SDK_CAUSES",
    "render",
    "run_suites",
]

COLUMNS = (*LIBRARIES, "naive", "reference")
MEASURED_WITH = "Measured with"

_PAR = (
    "no lock around the refresh: every request of one session that finds the "
    "token expired refreshes with the same refresh token"
)
_DBX_NO_SAVE_SHORT = (
    "the rotated refresh token is never written to the `TokenCache`, so the next "
    "process presents the consumed one"
)
_DBX_NO_SAVE = (
    "`external_browser()` refreshes the cached credentials (`credentials.token()`) "
    "but calls `TokenCache.save()` only after a browser login: "
    + _DBX_NO_SAVE_SHORT
    + ". Save the credentials after every refresh"
)
_DBX_KEEPS_REFUSED = (
    '`external_browser()` only logs a refused refresh ("Failed to refresh cached '
    'token") and opens the browser; the refused token stays in the `TokenCache`, '
    "so every new process presents it again. Drop the cache entry when a refresh "
    "is refused"
)
CAUSES: dict[tuple[str, str], str] = {
    ("requests-oauthlib", "C-PAR-01"): "`OAuth2Session.request()` has " + _PAR,
    ("requests-oauthlib", "C-PAR-02"): "`OAuth2Session.request()` has " + _PAR,
    ("requests-oauthlib", "C-XPROC-01"): (
        "nothing coordinates processes sharing a token store: each process "
        "refreshes the token it loaded, and `token_updater` only writes; the "
        "application must lock the store and re-read it before refreshing"
    ),
    ("requests-oauthlib", "C-XPROC-02"): (
        "as C-XPROC-01: each process refreshes the token it loaded"
    ),
    ("requests-oauthlib", "C-401-01"): (
        "auto-refresh reacts only to its own `expires_at` (`TokenExpiredError`); a "
        "401 `invalid_token` from the resource is returned to the caller with no "
        "refresh and no retry"
    ),
    ("requests-oauthlib", "C-SCOPE-01"): (
        "`refresh_token()` always sends the session's scope "
        "(`prepare_refresh_body(scope=self.scope)`); a session configured with the "
        "scope it asked for asks for more than was granted and gets "
        "`invalid_scope`. Build the refreshing session without `scope=`"
    ),
    ("authlib", "C-PAR-01"): "`OAuth2Auth.ensure_active_token()` has " + _PAR,
    ("authlib", "C-PAR-02"): "`OAuth2Auth.ensure_active_token()` has " + _PAR,
    ("authlib", "C-XPROC-01"): (
        "nothing coordinates processes sharing a token store: each process "
        "refreshes the token it loaded, and `update_token` only writes; the "
        "application must lock the store and re-read it before refreshing"
    ),
    ("authlib", "C-XPROC-02"): (
        "as C-XPROC-01: each process refreshes the token it loaded"
    ),
    ("authlib", "C-401-01"): (
        "`OAuth2Session` refreshes only when `token.is_expired(leeway)`; a 401 "
        "`invalid_token` from the resource is returned with no refresh and no retry"
    ),
    ("authlib", "C-SCOPE-01"): (
        "`refresh_token()` adds the client's `scope` to every refresh request; a "
        "client configured with the scope it asked for asks for more than was "
        "granted and gets `invalid_scope`. Omit `scope=` on the refreshing client"
    ),
    ("google-auth", "C-PAR-01"): (
        "`Credentials.before_request()` has " + _PAR + " (`AuthorizedSession`)"
    ),
    ("google-auth", "C-PAR-02"): (
        "`Credentials.before_request()` has " + _PAR + " (`AuthorizedSession`)"
    ),
    ("google-auth", "C-XPROC-01"): (
        "credentials refresh in memory and there is no refresh hook: processes "
        "sharing `to_json()` storage each refresh the token they loaded"
    ),
    ("google-auth", "C-XPROC-02"): (
        "as C-XPROC-01: each process refreshes the token it loaded"
    ),
    ("google-auth", "C-401-02"): (
        "`AuthorizedSession` refreshes and retries on 401 up to "
        "`max_refresh_attempts=2` (the default): a resource that keeps refusing "
        "gets two refreshes per request; pass `max_refresh_attempts=1`"
    ),
    ("google-auth", "C-AUTH-01"): (
        "`refresh_grant()` always sends `client_id` and `client_secret` in the body "
        "(`client_secret_post`); a client registered for `client_secret_basic` is "
        "authenticated with the wrong method"
    ),
    ("google-auth", "C-SCOPE-01"): (
        "`refresh_grant()` sends `Credentials.scopes` (the requested scopes, as "
        "google-auth-oauthlib stores them) on every refresh; when less was granted "
        "it asks for more and gets `invalid_scope`. Build the credentials with the "
        "granted scopes"
    ),
}
# The Databricks SDK's causes, checked against its measurement by
# tests/test_client_databricks_sdk.py.
SDK_CAUSES: dict[tuple[str, str], str] = {
    ("databricks-sdk", "C-401-01"): (
        "`SessionCredentials` refreshes only when `Token.expired` (40 s before "
        "`expiry`); `ApiClient` raises a 401 `invalid_token` from the API as "
        "`Unauthenticated` with no refresh and no retry"
    ),
    ("databricks-sdk", "C-AUTH-01"): (
        "`SessionCredentials.refresh()` calls `retrieve_token(use_params=True)`: "
        "`client_id` and `client_secret` always go in the body "
        "(`client_secret_post`); a client registered for `client_secret_basic` is "
        "authenticated with the wrong method"
    ),
    ("databricks-sdk", "C-ROT-01"): _DBX_NO_SAVE,
    ("databricks-sdk", "C-UNK-01"): "as C-ROT-01: " + _DBX_NO_SAVE_SHORT,
    ("databricks-sdk", "C-LIFE-01"): "as C-ROT-01: " + _DBX_NO_SAVE_SHORT,
    ("databricks-sdk", "C-LOST-02"): (
        "as C-ROT-01: the successor recovered inside the grace period is never "
        "written to the `TokenCache`, so the next process presents the consumed "
        "token"
    ),
    ("databricks-sdk", "C-TERM-01"): _DBX_KEEPS_REFUSED,
    ("databricks-sdk", "C-TERM-02"): _DBX_KEEPS_REFUSED,
    ("databricks-sdk", "C-LOST-01"): (
        "as C-TERM-01: the token refused after the lost answer stays in the "
        "`TokenCache` and every new process presents it again"
    ),
    ("databricks-sdk", "C-XPROC-01"): (
        "`TokenCache` has no lock and `external_browser()` refreshes whatever each "
        "process loaded: two processes started together both redeem the cached "
        "refresh token"
    ),
    ("databricks-sdk", "C-XPROC-02"): (
        "as C-XPROC-01: each process refreshes the token it loaded"
    ),
}
NAIVE_CAUSE = (
    "keeps the first refresh token, by design: the rotated one is never stored"
)

DISTRIBUTIONS = {
    "requests-oauthlib": ("requests-oauthlib", "oauthlib"),
    "authlib": ("authlib",),
    "google-auth": ("google-auth",),
    "databricks-sdk": ("databricks-sdk",),
}


def run_suites(
    adapters: tuple[str, ...] | list[str],
    out: Path,
    workers: dict[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run ``rotcert client`` for each adapter at once; return their summaries,
    each with the run's exit code added as ``exit_code``."""
    running = []
    for adapter in adapters:
        argv = [sys.executable, "-m", "conformance.cli", "client"]
        argv += ["--adapter", adapter, "--out", str(out / _folder(adapter))]
        if workers and adapter in workers:
            argv += ["-n", workers[adapter]]
        running.append(
            subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        )
    summaries = {}
    for adapter, process in zip(adapters, running, strict=True):
        _, stderr = process.communicate()
        summary = out / _folder(adapter) / "summary.json"
        if process.returncode not in (0, 1) or not summary.exists():
            raise RuntimeError(
                f"rotcert client --adapter {adapter} exited {process.returncode}: "
                + stderr.decode(errors="replace")[-2000:]
            )
        summaries[adapter] = {
            **json.loads(summary.read_text()),
            "exit_code": process.returncode,
        }
    return summaries


def _folder(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:60]


def _versions() -> str:
    shown = []
    for distributions in DISTRIBUTIONS.values():
        for distribution in distributions:
            try:
                shown.append(f"{distribution} {version(distribution)}")
            except PackageNotFoundError:
                shown.append(f"{distribution} (not installed)")
    python = ".".join(str(part) for part in sys.version_info[:2])
    return f"{MEASURED_WITH} {', '.join(shown)}, Python {python}."


def _cell(scenario: dict[str, Any] | None) -> str:
    if scenario is None:
        return "not run"
    outcome = scenario["outcome"]
    if outcome == "passed":
        return "pass"
    if outcome == "failed":
        return "**FAIL**"
    reason = scenario.get("reason") or ""
    return "n/a" if reason.startswith("not applicable") else "not run"


def cause(adapter: str, scenario_id: str) -> str | None:
    if adapter == "naive":
        return NAIVE_CAUSE
    return CAUSES.get((adapter, scenario_id)) or SDK_CAUSES.get((adapter, scenario_id))


def render(summaries: dict[str, dict[str, Any]]) -> str:
    """The Markdown page: deterministic for one set of outcomes."""
    columns = [c for c in COLUMNS if c in summaries]
    by_adapter = {
        name: {s["scenario_id"]: s for s in summaries[name]["scenarios"]}
        for name in columns
    }
    every = sorted({sid for scenarios in by_adapter.values() for sid in scenarios})
    first = {
        sid: next(s[sid] for s in by_adapter.values() if sid in s) for sid in every
    }

    lines = [
        "# Client compatibility",
        "",
        "What `rotcert client` measured for four unmodified OAuth clients (three "
        "libraries and the Databricks SDK for Python), "
        "driven through the reference adapters in `conformance/adapters/`, against "
        "the built-in mock server. `naive` (keeps the first refresh token) shows "
        "what failure looks like; `reference` (rotcert's own small client) shows "
        "that every scenario can pass. Each scenario is judged from the server's "
        "event log, the way the report explains it.",
        "",
        _versions(),
        "Regenerate with `python -m conformance.adapters.compat --write "
        "docs/client-compatibility.md`; `tests/test_client_compat.py` fails when "
        "this page and a fresh measurement disagree.",
        "",
        "| scenario | requirement | " + " | ".join(columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for sid in every:
        scenario = first[sid]
        cells = [_cell(by_adapter[name].get(sid)) for name in columns]
        lines.append(
            f"| {sid} {scenario['title'].rstrip('.')} | {scenario['requirement']} | "
            + " | ".join(cells)
            + " |"
        )
    for profile in _profiles(summaries, columns):
        cells = []
        for name in columns:
            verdict = next(
                (v for v in summaries[name]["verdicts"] if v["profile"] == profile),
                None,
            )
            if verdict is None:
                cells.append("not judged")
            elif verdict["certified"]:
                cells.append("CERTIFIED")
            else:
                cells.append(f"NOT CERTIFIED ({len(verdict['failed'])} failed)")
        lines.append(f"| **{profile}** | verdict | " + " | ".join(cells) + " |")

    lines += ["", "## Why each failure happens", ""]
    for name in columns:
        failed = [
            sid
            for sid in every
            if by_adapter[name].get(sid, {}).get("outcome") == "failed"
        ]
        if not failed:
            lines.append(f"- **{name}**: no failure.")
            continue
        lines.append(f"- **{name}**")
        for sid in failed:
            said = cause(name, sid) or "no curated cause yet: see the HTML report"
            lines.append(f"  - {sid}: {said}.")
    lines += [
        "",
        "## How the libraries were driven",
        "",
        "Each reference adapter configures its library the way the library's "
        "documentation shows, with the same glue for all: one client configuration "
        "(client id and secret, the registered authentication method, the scope "
        "the application asks for, the token endpoint); tokens persisted through "
        "the library's own update hook (google-auth has none: the credentials are "
        "written back after each call); an OAuth error answer to a refresh (HTTP "
        '4xx) reported as "the user must log in again" and the stored token '
        "forgotten if it is still the refused one. Time is moved for the client "
        "and the server together (freezegun), so access tokens live as long as the "
        "declared policy says (1 h) and the libraries' refresh margins behave as "
        "in production.",
        "",
        "Set-up traps the glue works around rather than measures:",
        "",
        "- requests-oauthlib refuses `http://` endpoints unless "
        "`OAUTHLIB_INSECURE_TRANSPORT` is set (the mock listens on loopback), and "
        "raises a `Warning` for a granted scope narrower than the requested one "
        "unless `OAUTHLIB_RELAX_TOKEN_SCOPE` is set.",
        "- google-auth's `Credentials.from_authorized_user_info()` always replaces "
        "the stored `token_uri` with Google's endpoint, and `with_token_uri()` "
        "returns a copy without the expiry: credentials restored for a custom "
        "server need both put back.",
        "",
        "The Databricks SDK is driven differently, because it owns its tokens: "
        '`Config(auth_type="external-browser")` with the mock\'s base URL as '
        "host, so the SDK finds `/oidc/v1/token` through "
        "`/.well-known/databricks-config` and `/oidc/.well-known/"
        "oauth-authorization-server`, keeps its tokens in its own `TokenCache` "
        "(`HOME` is the state directory, so the cache survives restarts), and "
        "calls `/api/2.0/resource` through its `ApiClient`. The glue neither "
        "writes nor clears that cache. The browser is a `webbrowser` entry that "
        "stands in for the user: during `login` it approves and delivers the "
        "redirect to the SDK's own listener on `localhost:8020`; during `call`, "
        'the SDK opening its browser is reported as "the user must log in '
        "again\". `seed` writes the cache file the SDK's login would have "
        "written. Plain `http://` needs no switch: the SDK adds `https://` only "
        "to a host given without a scheme.",
        "",
    ]
    return "\n".join(lines)


def _profiles(summaries: dict[str, dict[str, Any]], columns: list[str]) -> list[str]:
    seen: list[str] = []
    for name in columns:
        for verdict in summaries[name]["verdicts"]:
            if verdict["profile"] not in seen:
                seen.append(verdict["profile"])
    return seen


def comparable(page: str) -> str:
    """The page without what legitimately changes between installs."""
    return "\n".join(
        line for line in page.splitlines() if not line.startswith(MEASURED_WITH)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m conformance.adapters.compat",
        description="Measure the reference adapters and print the compatibility table.",
    )
    parser.add_argument("--write", metavar="FILE", help="write the page here")
    parser.add_argument("--out", metavar="DIR", help="keep the reports here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(args.out or scratch)
        page = render(run_suites(COLUMNS, out))
    if args.write:
        Path(args.write).write_text(page, encoding="utf-8")
    else:
        print(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
