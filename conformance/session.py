"""The plugin's state for one run: target, grant source, time, results, verdicts."""

from __future__ import annotations

import json
import math
import os
from typing import Any

import pytest

from mock_server.policy import load_policy

from . import options
from .grants import FileGrants, GrantError, GrantSource, make_grant_source
from .plugin import MARKER, RECORD
from .profiles import (
    CLIENT_PROFILES,
    SERVER_PROFILES,
    Result,
    Verdict,
    default_server_profiles,
    judge,
)
from .redact import Redactor
from .report import ScenarioRecord, scenario_html, verdict_html, write_summary
from .target import (
    ClientCredentials,
    Endpoints,
    ServerTarget,
    TargetError,
    admin_clients,
    declared_integration,
    discover,
    embedded_target,
    fetch_json,
)
from .timecontrol import AdminClock, FrozenTime, RealWait, TimeControl

__all__ = ["RotcertSession", "printable"]

MAX_RACE_THREADS = 256


# A client run's mock does not run the declared policy as it is: each scenario
# lays its own rotation rules over it, and a command adapter gets 1 s access
# tokens.
CLIENT_RUN_POLICY = (
    "set by each scenario over the declared one (its first step names it)"
)


def printable(text: str) -> str:
    """Text a hostile server wrote, safe for a terminal: control characters
    (escape sequences that could fake a verdict line) are shown as escapes."""
    return "".join(c if c.isprintable() or c in "\n\t" else repr(c)[1:-1] for c in text)


def _number(
    config: pytest.Config, name: str, least: float = 0, most: float = math.inf
) -> float:
    raw = options.option(config, name)
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise pytest.UsageError(
            f"--rotcert-{name} must be a number, got {raw!r}"
        ) from None
    # Not finite: "inf" would crash int() for the race options and hang requests.
    if not math.isfinite(value):
        raise pytest.UsageError(
            f"--rotcert-{name} must be a finite number, got {raw!r}"
        )
    if value < least:
        raise pytest.UsageError(
            f"--rotcert-{name} must be at least {least:g}, got {raw!r}"
        )
    if value > most:
        raise pytest.UsageError(
            f"--rotcert-{name} must be at most {most:g}, got {raw!r}"
        )
    return value


class RotcertSession:
    """The plugin's state for one run: target, results and verdicts."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.results: dict[str, dict[str, Any]] = {}
        # One redactor for the whole run: a token seen in any scenario is
        # redacted wherever it shows up again.
        self.redactor = Redactor()
        self.deselected: list[pytest.Item] = []
        self.notes: list[str] = []
        self._target: ServerTarget | None = None
        self._grants: GrantSource | None = None
        self._time: TimeControl | None = None
        self.timeout = _number(config, "timeout", least=0.01)
        self.wait_budget = _number(config, "wait-budget")
        # Each race thread is a real thread: a few hundred is already a stampede,
        # and far more would fail to start.
        self.race_threads = int(
            _number(config, "race-threads", least=2, most=MAX_RACE_THREADS)
        )
        self.race_rounds = int(_number(config, "race-rounds", least=1))
        auth = options.option(config, "client-auth") or "basic"
        if auth not in ("basic", "post", "none"):
            raise pytest.UsageError(
                f"--rotcert-client-auth is basic, post or none, not {auth!r}"
            )
        requested = options.option(config, "profile")
        self.requested = [p.strip() for p in requested.split(",")] if requested else []
        known = {**SERVER_PROFILES, **CLIENT_PROFILES}
        for name in self.requested:
            if name not in known:
                raise pytest.UsageError(
                    f"unknown profile {name!r}; known profiles: {', '.join(known)}"
                )
        try:
            self.integration = declared_integration(
                options.option(config, "policy"), options.option(config, "preset")
            )
        except TargetError as exc:
            raise pytest.UsageError(str(exc)) from None

    # ------------------------------------------------------------------ target

    def target(self) -> ServerTarget:
        if self._target is None:
            try:
                self._target = self._build_target()
            except TargetError as exc:
                raise pytest.UsageError(options.cli_flags(str(exc))) from None
        return self._target

    def _build_target(self) -> ServerTarget:
        config = self.config
        opt = lambda name: options.option(config, name)  # noqa: E731
        issuer, token = opt("issuer"), opt("token-endpoint")
        kind = opt("target")
        if kind not in (None, "embedded", "url"):
            raise TargetError("--rotcert-target is embedded or url")
        # A declared kind that contradicts the addresses given is refused: "url"
        # with no address would otherwise certify the embedded mock instead.
        if kind == "url" and not issuer and not token:
            raise TargetError(
                "--rotcert-target url needs --rotcert-issuer or "
                "--rotcert-token-endpoint."
            )
        if kind == "embedded" and (issuer or token):
            raise TargetError(
                "--rotcert-target embedded takes no --rotcert-issuer or "
                "--rotcert-token-endpoint."
            )
        if not issuer and not token:
            broken = [m for m in (opt("broken-mode") or "").split(",") if m]
            return embedded_target(self.integration, broken, self.timeout)
        if opt("broken-mode"):
            raise TargetError(
                "--rotcert-broken-mode works with the embedded target only"
            )

        import requests

        session = requests.Session()
        metadata = discover(session, issuer, self.timeout) if issuer else {}
        pick = lambda name, key: opt(name) or metadata.get(key)  # noqa: E731
        ends = Endpoints(
            token=pick("token-endpoint", "token_endpoint"),
            authorization=pick("authorization-endpoint", "authorization_endpoint"),
            revocation=pick("revocation-endpoint", "revocation_endpoint"),
            introspection=pick("introspection-endpoint", "introspection_endpoint"),
            resource=pick("resource-endpoint", "rotcert_resource_endpoint"),
            admin=pick("admin-endpoint", "rotcert_admin_endpoint"),
        )
        known = admin_clients(session, ends.admin, self.timeout) if ends.admin else {}
        if ends.admin:
            self._compare_policies(session, ends.admin)
        client_id = opt("client-id")
        auth = opt("client-auth") or "basic"
        if auth not in ("basic", "post", "none"):
            raise TargetError(
                f"--rotcert-client-auth is basic, post or none, not {auth!r}"
            )
        if client_id:
            secret = options.secret("client_secret")
            if secret is None and auth != "none":
                default = ", the default" if auth == "basic" else ""
                raise TargetError(
                    f"client {client_id!r} authenticates with a secret "
                    f"(--rotcert-client-auth {auth}{default}), "
                    "but ROTCERT_CLIENT_SECRET is not set: set it, or give "
                    "--rotcert-client-auth none for a public client"
                )
            client = ClientCredentials(client_id, secret, auth)
        elif "main" in known:
            client = known["main"]
        else:
            raise TargetError("Give --rotcert-client-id (and ROTCERT_CLIENT_SECRET).")
        second_id = opt("second-client-id")
        second_secret = options.secret("second_client_secret")
        if second_id and second_secret is None and auth != "none":
            raise TargetError(
                f"second client {second_id!r} needs its secret in "
                "ROTCERT_SECOND_CLIENT_SECRET (or, if both clients are public, "
                "give --rotcert-client-auth none)"
            )
        second = (
            ClientCredentials(second_id, second_secret, auth)
            if second_id
            else known.get("second")
        )
        return ServerTarget(
            name=issuer or ends.token,
            endpoints=ends,
            client=client,
            second_client=second,
            integration=self.integration,
            session=session,
            timeout=self.timeout,
            metadata=metadata,
        )

    def _compare_policies(self, session, admin: str) -> None:
        """A rotcert mock says what it runs: warn when that is not what was
        declared (the expectations still come from the declaration)."""
        body, _ = fetch_json(session, admin.rstrip("/") + "/clients", self.timeout)
        try:
            clients = (body or {}).get("clients", [])
            running = next(c for c in clients if c.get("role") == "main")
            policy = load_policy(running["token_access_policy"])
        except Exception:  # an unreadable answer says nothing either way
            return
        declared = self.integration.policy
        if policy == declared:
            return
        changed = [
            f"{name}: declared {value!r}, target runs {getattr(policy, name)!r}"
            for name, value in vars(declared).items()
            if getattr(policy, name) != value
        ]
        self.notes.append(
            "the target's own policy differs from the declared one ("
            + "; ".join(changed)
            + "); declare it with --rotcert-policy or --rotcert-preset"
        )

    def grants(self) -> GrantSource:
        if self._grants is None:
            target = self.target()
            try:
                self._grants = make_grant_source(
                    options.option(self.config, "grant-source"),
                    target,
                    options.option(self.config, "username"),
                    options.secret("password"),
                    options.option(self.config, "redirect-uri"),
                )
            except GrantError as exc:
                raise pytest.UsageError(options.cli_flags(str(exc))) from None
        return self._grants

    def time(self) -> TimeControl:
        if self._time is None:
            target = self.target()
            wanted = options.option(self.config, "time")
            if wanted is None:
                wanted = (
                    "freeze"
                    if target.embedded
                    else "admin"
                    if target.endpoints.admin
                    else "wait"
                )
            if wanted == "freeze" and target.embedded is None:
                raise pytest.UsageError(
                    options.cli_flags(
                        "--rotcert-time freeze needs the embedded target; use admin "
                        "for a rotcert mock in another process, or wait"
                    )
                )
            if wanted == "admin" and not target.endpoints.admin:
                raise pytest.UsageError(
                    options.cli_flags(
                        "--rotcert-time admin needs a rotcert admin endpoint"
                    )
                )
            if wanted == "freeze":
                self._time = FrozenTime()
            elif wanted == "admin":
                self._time = AdminClock(
                    target.session, target.endpoints.admin or "", self.timeout
                )
            elif wanted == "wait":
                self._time = RealWait(self.wait_budget)
            else:
                raise pytest.UsageError(
                    options.cli_flags(
                        f"--rotcert-time is freeze, admin or wait, not {wanted!r}"
                    )
                )
        return self._time

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Check the target before any scenario runs (and before xdist starts its
        workers): a setup mistake is one usage error, not twenty failures."""
        if os.environ.get("ROTCERT_ADAPTER"):
            return  # a client run: the client catalogue serves its own mock
        time = self.time()
        grants = self.grants()
        workers = getattr(self.config.option, "numprocesses", None)
        if workers and not hasattr(self.config, "workerinput"):
            if isinstance(time, AdminClock):
                raise pytest.UsageError(
                    options.cli_flags(
                        "the target's clock is moved through its admin API, and "
                        "parallel scenarios would move it under each other: run "
                        "without -n (or with --rotcert-time wait)"
                    )
                )
        if not isinstance(grants, FileGrants):
            self._preflight(grants)

    def _preflight(self, grants: GrantSource) -> None:
        """Mint one family and refresh it once: wrong credentials are the user's
        mistake, to be said once, not charged to the server twenty times."""
        target = self.target()
        http = target.http(self.redactor)
        try:
            body = grants.mint(http, target.client, None)
        except GrantError as exc:
            raise pytest.UsageError(
                options.cli_flags(f"could not mint a first grant: {exc}")
            ) from None
        form, auth = target.client.form_and_auth()
        form.update(
            grant_type="refresh_token", refresh_token=str(body["refresh_token"])
        )
        reply = http.post_form(
            target.endpoints.token, form, auth=auth, step="preflight"
        )
        if reply.error == "invalid_client":
            raise pytest.UsageError(
                "the target refused the credentials of client "
                f"{target.client.client_id!r} (invalid_client): check the client "
                "id and ROTCERT_CLIENT_SECRET"
            )

    # ------------------------------------------------------------- collection

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.deselected.extend(items)

    def pytest_itemcollected(self, item: pytest.Item) -> None:
        # -k S-ROT-01 selects a scenario by the id the README and reports use.
        marker = item.get_closest_marker(MARKER)
        if marker is not None and "id" in marker.kwargs:
            item.extra_keyword_matches.add(marker.kwargs["id"])

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        seen: dict[str, str] = {}
        for item in items:
            marker = item.get_closest_marker(MARKER)
            if marker is None:
                continue
            meta = marker.kwargs
            scenario_id = meta["id"]
            if scenario_id in seen and seen[scenario_id] != item.nodeid:
                raise pytest.UsageError(
                    f"scenario id {scenario_id} is used by {seen[scenario_id]} and "
                    f"{item.nodeid}"
                )
            seen[scenario_id] = item.nodeid
            doc = (getattr(item, "obj", None).__doc__ or "").strip()
            item.stash[RECORD] = ScenarioRecord(
                scenario_id=scenario_id,
                # The docstring's first paragraph, however it is wrapped.
                title=" ".join(doc.split("\n\n")[0].split()) if doc else item.name,
                requirement=meta["requirement"],
                profiles=list(meta.get("profiles", ())),
                catches=list(meta.get("catches", ())),
            )

    # ---------------------------------------------------------------- reports

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call):
        outcome = yield
        report = outcome.get_result()
        record = item.stash.get(RECORD, None)
        if record is None:
            return

        final = report.when == "call" or (report.when == "setup" and not report.passed)
        if report.when == "teardown" and report.failed:
            final = True
        if not final:
            return

        record.outcome = report.outcome
        record.duration_s = round(record.duration_s + report.duration, 3)
        if report.skipped and isinstance(report.longrepr, tuple):
            record.reason = str(report.longrepr[2]).removeprefix("Skipped: ")
        elif report.failed and call.excinfo is not None:
            text = str(call.excinfo.value) or call.excinfo.typename
            text = text.strip().splitlines()[0][:600]
            record.reason = text.removeprefix(f"[{record.scenario_id}] ")
            # What the target sent back may hold a token it issued: the terminal
            # and JUnit get the same redacted text as the reports.
            report.longrepr = printable(self.redactor.redact(str(report.longrepr)))
        if record.reason:
            record.reason = printable(self.redactor.redact(record.reason))
        report.user_properties.append(("rotcert", json.dumps(record.to_json())))
        try:
            from pytest_html import extras
        except ImportError:  # pragma: no cover - pytest-html is a dependency
            return
        report.extras = [
            *getattr(report, "extras", []),
            extras.html(scenario_html(record, self.redactor)),
        ]

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for name, value in report.user_properties:
            if name == "rotcert":
                data = json.loads(value)
                self.results[data["scenario_id"]] = data

    def verdicts(self) -> list[Verdict]:
        results = [
            Result(
                r["scenario_id"], r["title"], r["profiles"], r["outcome"], r["reason"]
            )
            for r in self.results.values()
        ]
        # A selection (-k, -m) judges part of a profile: never certify on that.
        for item in self.deselected:
            marker = item.get_closest_marker(MARKER)
            if marker is not None and marker.kwargs["id"] not in self.results:
                results.append(
                    Result(
                        marker.kwargs["id"],
                        item.name,
                        list(marker.kwargs.get("profiles", ())),
                        "skipped",
                        "cannot check: deselected (-k / -m)",
                    )
                )
        if not self.deselected and (
            self.config.option.keyword or self.config.option.markexpr
        ):
            # Under xdist the controller never sees deselection: say it anyway.
            profiles_run = {p for r in results for p in r.profiles}
            results.append(
                Result(
                    "(selection)",
                    "scenarios selected with -k / -m",
                    sorted(profiles_run),
                    "skipped",
                    "cannot check: the run was limited with -k / -m",
                )
            )
        present = {p for r in results for p in r.profiles}
        profiles = self.requested or [
            p for p in default_server_profiles(self.integration.policy) if p in present
        ] + [p for p in CLIENT_PROFILES if p in present]
        described = {**SERVER_PROFILES, **CLIENT_PROFILES}
        return [judge(p, described[p], results) for p in profiles]

    def describe_target(self) -> dict[str, Any]:
        adapter = os.environ.get("ROTCERT_ADAPTER")
        if adapter:
            described = {
                "name": f"client adapter {adapter}",
                "adapter": adapter,
                "server_policy": CLIENT_RUN_POLICY,
            }
        elif self._target is not None:
            described = self._target.describe()
            described.update(self._broken_modes())
        else:
            described = {}
        described.setdefault("declared_policy", self.integration.policy.to_json())
        if self.notes:
            described["warnings"] = [options.cli_flags(n) for n in self.notes]
        return described

    def _broken_modes(self) -> dict[str, list[str]]:
        """The embedded mock's broken modes, if any: a reader must see that the
        target was deliberately wrong before reading its verdict."""
        embedded = self._target.embedded if self._target else None
        broken = sorted(embedded.broken_modes()) if embedded is not None else []
        return {"broken_modes": broken} if broken else {}

    def pytest_html_report_title(self, report) -> None:
        # Called before the first scenario builds the target: name it from options.
        adapter = os.environ.get("ROTCERT_ADAPTER")
        name = (
            (adapter and f"client adapter {adapter}")
            or options.option(self.config, "issuer")
            or options.option(self.config, "token-endpoint")
            or "the embedded mock server"
        )
        report.title = f"rotcert certification of {name}"

    def pytest_html_results_summary(self, prefix, summary, postfix, session) -> None:
        prefix.append(
            verdict_html([v.to_json() for v in self.verdicts()], self.describe_target())
        )

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(self.config, "workerinput"):
            return
        path = options.option(self.config, "summary")
        if path:
            write_summary(
                path,
                [v.to_json() for v in self.verdicts()],
                list(self.results.values()),
                self.describe_target(),
            )

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if hasattr(self.config, "workerinput") or not self.results:
            return
        write = terminalreporter.write_line
        terminalreporter.section("rotcert verdict")
        if os.environ.get("ROTCERT_ADAPTER"):
            write("server policy: " + CLIENT_RUN_POLICY)
        else:
            policy = self.integration.policy.to_json()
            fields = ", ".join(f"{k}={v}" for k, v in policy.items())
            write("declared policy: " + fields)
        broken = self._broken_modes().get("broken_modes")
        if broken:
            # A CI log reader must see at once that the failures are deliberate.
            write(
                "broken mode active: " + ", ".join(broken) + " (the mock is "
                "deliberately wrong, so failures are expected)",
                yellow=True,
            )
        for note in self.notes:
            write("warning: " + options.cli_flags(note), yellow=True)
        for verdict in self.verdicts():
            counts = f"{len(verdict.passed)} passed, {len(verdict.failed)} failed"
            if verdict.not_run:
                counts += f", {len(verdict.not_run)} could not run"
            if verdict.not_applicable:
                # Skipped because the declared policy rules them out (a grace
                # scenario without a grace period): they do not count against it.
                counts += f", {len(verdict.not_applicable)} not applicable"
            write(f"{verdict.profile:<18} {verdict.status:<28} {counts}")
            for line in verdict.failed + verdict.not_run:
                write(f"    {line['id']}: {line['reason']}")
