"""What a client scenario works with: the mock server, the adapter, time, judgement.

The mock runs in a thread and is reached over loopback HTTP, so a command adapter
talks to it as any client would. Every step lands in the report; the verdict
comes from the mock's events (which token each request presented, what the
server answered) and from what each action reported (exit 0, 3 or an error).
Every failure says what the client did, what it should have done, and which
requirement that is.
"""

from __future__ import annotations

import datetime as dt
import importlib
import pkgutil
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time

from mock_server import MockServer
from mock_server.policy import AppIntegration, Policy, load_policy
from mock_server.serve import start_in_thread
from mock_server.tokens import fingerprint, token_hash

from ..adapters import ActionResult, Adapter, AdapterEnv, run_together
from ..audit import (
    RULES,
    exchanges_from_events,
    generations,
    is_refresh,
    judge_events,
    lineages_from_events,
    result_of,
)
from ..report import ScenarioRecord
from ..timecontrol import human

__all__ = [
    "GRACE",
    "NON_ROTATING",
    "STRICT",
    "ClientScenario",
    "MockHarness",
    "RealTime",
    "SharedFrozenTime",
    "Step",
    "catalogue",
    "frozen_or_real",
    "run_scenario",
]

STRICT, GRACE, NON_ROTATING = "strict", "grace", "non-rotating"
GRACE_SECONDS = 30

# A command adapter's clock cannot be moved: its access tokens live 1 s and the
# suite really waits, with room for clients that round expiry to whole seconds.
REAL_ACCESS_TTL = 1
REAL_MARGIN_S = 0.55
# Longer than any client's refresh margin (google-auth refreshes 225 s early).
FRESH_ACCESS_TTL = 300
# Token responses are held this long where parallel refreshes must overlap.
HOLD_MS = 1000
ACTION_TIMEOUT_S = 30.0

_TOKENISH = re.compile(r"[A-Za-z0-9_\-]{40,}")


class SharedFrozenTime:
    """In-process adapters: freezegun moves the client's and the server's clock
    together, so an hour passes at once and the client sees it pass."""

    name = "shared"
    margin = 1.0

    def __init__(self) -> None:
        self._freezer: Any = None
        self._factory: Any = None

    def begin(self) -> None:
        # pytest's own timing stays real, so reports show real durations.
        self._freezer = freeze_time(
            dt.datetime.now(dt.timezone.utc), tick=True, ignore=["_pytest.runner"]
        )
        self._factory = self._freezer.start()

    def end(self) -> None:
        if self._freezer is not None:
            self._freezer.stop()
            self._freezer = self._factory = None

    def access_ttl(self, policy: Policy) -> int:
        return policy.access_ttl

    def pass_time(self, seconds: float) -> None:
        self._factory.tick(seconds)


class RealTime:
    """Command adapters: short-lived access tokens and real waiting."""

    name = "real"
    margin = REAL_MARGIN_S

    def begin(self) -> None:
        pass

    def end(self) -> None:
        pass

    def access_ttl(self, policy: Policy) -> int:
        return REAL_ACCESS_TTL

    def pass_time(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass
class MockHarness:
    """The mock authorization server and protected resource, on loopback."""

    server: MockServer
    base_url: str
    integration: AppIntegration
    auth_method: str
    stop: Callable[[], None]

    @classmethod
    def start(cls, integration: AppIntegration, client_auth: str) -> MockHarness:
        server = MockServer(integration)
        base_url, stop = start_in_thread(server)
        secret = server.credentials["main"].client_secret
        method = {"basic": "client_secret_basic", "post": "client_secret_post"}
        auth = method.get(client_auth, "none") if secret else "none"
        return cls(server, base_url, integration, auth, stop)

    @property
    def client_id(self) -> str:
        return self.server.credentials["main"].client_id

    @property
    def client_secret(self) -> str | None:
        return self.server.credentials["main"].client_secret

    def env(self, state_dir: Path, scope: str) -> AdapterEnv:
        base = self.base_url
        return AdapterEnv(
            issuer=base,
            token_endpoint=base + "/token",
            authorization_endpoint=base + "/authorize",
            resource=base + "/resource",
            client_id=self.client_id,
            client_secret=self.client_secret,
            client_auth_method=self.auth_method,
            redirect_uri=base + "/callback",
            scope=scope,
            state_dir=state_dir,
        )


@dataclass
class Step:
    """One action of the client (or several started together) and its events."""

    label: str
    results: list[ActionResult]
    concurrency: int
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def parallel(self) -> bool:
        return self.concurrency > 1 or len(self.results) > 1

    @property
    def seqs(self) -> set[int]:
        return {e["seq"] for e in self.events}

    def refreshes(self) -> list[dict[str, Any]]:
        return [e for e in self.events if is_refresh(e)]

    def resource_requests(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("endpoint") == "resource"]


def describe_policy(policy: Policy) -> str:
    if policy.single_use:
        rotation = "single-use refresh tokens, " + (
            f"{policy.grace} s grace period" if policy.grace else "no grace (strict)"
        )
        rotation += f", reuse → {policy.reuse_detection}"
    else:
        rotation = f"no rotation (refresh responses: {policy.non_rotating_response})"
    shape = (
        '400 invalid_request "Refresh token is invalid"'
        if policy.invalid_refresh_token_error == "databricks"
        else "400 invalid_grant"
    )
    parts = [
        rotation,
        f"access tokens live {human(policy.access_ttl)}",
        f"a dead refresh token → {shape}",
    ]
    if policy.absolute_lifetime is not None:
        parts.append(f"sessions end after {human(policy.absolute_lifetime)}")
    return "; ".join(parts)


class ClientScenario:
    """One client scenario: set the server up, drive the client, judge events."""

    def __init__(
        self,
        mock: MockHarness,
        adapter: Adapter,
        record: ScenarioRecord,
        state_dir: Path,
        clock: SharedFrozenTime | RealTime,
        timeout: float = ACTION_TIMEOUT_S,
    ) -> None:
        self.mock = mock
        self.server = mock.server
        self.adapter = adapter
        self.record = record
        # The client's storage exists, empty, before its first action, as a
        # fresh install's would: an adapter need not create it.
        state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir = state_dir
        self.clock = clock
        self.timeout = timeout
        self.policy: Policy = mock.integration.policy
        self.steps: list[Step] = []
        self.problems: list[str] = []
        self.elapsed = 0.0
        self.requested_scope = " ".join(mock.integration.scopes)
        self.seeded_fp: str | None = None
        self.family_id: str | None = None
        self._seeded_token: str | None = None
        self._start = self.server.clock.now()

    # ------------------------------------------------------------ reporting

    def step(self, text: str) -> None:
        when = f"[t+{human(round(self.elapsed, 2))}] " if self.elapsed else ""
        self.record.steps.append(when + text)

    def scrub(self, text: str) -> str:
        """Turn any token the mock knows into its fingerprint, and hide the
        client secret: adapters may echo both in their messages."""

        def known(match: re.Match[str]) -> str:
            value = match.group(0)
            digest = token_hash(value)
            with self.server.store.transaction(write=False) as tx:
                if tx.get("refresh", digest) or tx.get("access", digest):
                    return fingerprint(value)
            return value

        text = _TOKENISH.sub(known, text)
        secret = self.mock.client_secret
        return text.replace(secret, "<client_secret>") if secret else text

    def fail_now(self, text: str) -> None:
        """Stop here: the scenario cannot go on (the adapter is unusable)."""
        self.close()
        pytest.fail(self.scrub(text), pytrace=False)

    # ---------------------------------------------------------------- setup

    def use_policy(
        self, rotation: str = STRICT, keep_access_fresh: bool = False, **fields: Any
    ) -> Policy:
        """The declared policy with this scenario's rotation rules laid over it."""
        base = self.mock.integration.policy
        ttl = self.clock.access_ttl(base)
        if keep_access_fresh:
            ttl = max(ttl, FRESH_ACCESS_TTL)
        document = {
            **base.to_json(),
            "access_token_ttl_in_seconds": ttl,
            "refresh_token_ttl_in_seconds": max(base.refresh_ttl, 100 * ttl),
            "enable_single_use_refresh_tokens": rotation != NON_ROTATING,
            "reuse_grace_period_in_seconds": GRACE_SECONDS if rotation == GRACE else 0,
            **fields,
        }
        policy = load_policy(document)
        client = self.server.client(self.mock.client_id)
        assert client is not None
        client.policy_json = policy.to_json()
        self.server.save_client(client)
        self.policy = policy
        self.step("server policy: " + describe_policy(policy))
        return policy

    def fault(self, kind: str, why: str, **params: Any) -> None:
        self.server.add_fault(
            {"kind": kind, "client_id": self.mock.client_id, **params}
        )
        self.step(f"server fault armed: {why}")

    def hold_token_responses(self) -> None:
        self.fault(
            "delay",
            f"every token response is held {HOLD_MS} ms, so refreshes overlap",
            delay_ms=HOLD_MS,
        )

    def env(self, concurrency: int = 1) -> AdapterEnv:
        env = self.mock.env(self.state_dir, self.requested_scope)
        return env.with_concurrency(concurrency)

    def seed(
        self,
        scope: str | None = None,
        requested_scope: str | None = None,
        extra: Mapping[str, Any] | None = None,
        requirement: str | None = None,
    ) -> dict[str, Any]:
        """Mint a grant and hand its token response to the client's ``seed``.

        With ``requirement``, the response itself is under test (``extra``), so a
        client that cannot store it fails that requirement.
        """
        granted = (scope or " ".join(self.mock.integration.scopes)).split()
        self.requested_scope = requested_scope or " ".join(granted)
        client = self.server.client(self.mock.client_id)
        assert client is not None
        tokens = self.server.authority.start_grant(client, self.server.user, granted)
        self.server.record(
            {
                "endpoint": "admin_grant",
                "client_id": client.client_id,
                "outcome": "issued",
                "family_id": tokens.family_id,
                "generation": 0,
                "issued_fp": tokens.issued_fp,
                "scope_granted": " ".join(granted),
                "status": 200,
            }
        )
        self.family_id, self.seeded_fp = tokens.family_id, tokens.issued_fp
        self._seeded_token = tokens.refresh_token
        response = {**tokens.response(), **(extra or {})}
        result = self.adapter.run("seed", self.env(), response, self.timeout)
        asked = (
            f", the client asks for {self.requested_scope!r}"
            if self.requested_scope != " ".join(granted)
            else ""
        )
        self.step(
            f"seed the client with a fresh grant: refresh token {tokens.issued_fp} "
            f"(generation 0), scope {' '.join(granted)!r}{asked} → "
            + self.scrub(result.describe())
        )
        if not result.ok:
            self._seed_failed(result, tokens.response(), extra, requirement)
        return response

    def _seed_failed(
        self,
        result: ActionResult,
        plain: dict[str, Any],
        extra: Mapping[str, Any] | None,
        requirement: str | None,
    ) -> None:
        """Stop, naming the cause. The response's extra members are to blame
        only if the client stores the same response without them; otherwise
        the seed itself is broken and no requirement was tested."""
        if requirement and extra and not result.problem and self._stores(plain):
            self.fail_now(
                f"{requirement}: the client stores a plain token response but not "
                f"the same one with {', '.join(sorted(extra))} set: "
                + result.describe()
            )
        self.fail_now(
            "set-up: the seed action (storing a fresh token response, before any "
            "refresh) failed, so nothing could be tested: "
            + result.describe()
            + _stderr_tail(result)
        )

    def _stores(self, response: dict[str, Any]) -> bool:
        """Seed again with ``response``: can the client store it at all?"""
        result = self.adapter.run("seed", self.env(), response, self.timeout)
        self.step(
            "seed again with a plain token response, to tell its members from a "
            "broken seed → " + self.scrub(result.describe())
        )
        return result.ok

    def revoke_grant(self, why: str) -> None:
        client = self.server.client(self.mock.client_id)
        assert client is not None and self._seeded_token is not None
        self.server.authority.revoke(client, self._seeded_token)
        self.server.record(
            {
                "endpoint": "admin_revoke",
                "client_id": client.client_id,
                "family_id": self.family_id,
                "outcome": "revoked",
                "status": 200,
            }
        )
        self.step(f"revoke the grant on the server ({why})")

    # ----------------------------------------------------------------- time

    def expire_access_token(self, why: str = "") -> None:
        seconds = self.policy.access_ttl + self.clock.margin
        self.clock.pass_time(seconds)
        self.elapsed += seconds
        self.record.simulated_s = self.elapsed
        how = "real waiting" if self.clock.name == "real" else "client and server"
        self.step(
            f"let {human(round(seconds, 2))} pass ({how}): the access token has "
            "expired" + (f"; {why}" if why else "")
        )

    def advance_server(self, seconds: float, why: str) -> None:
        self.server.clock.advance(seconds)
        self.elapsed += seconds
        self.record.simulated_s = self.elapsed
        self.step(f"move the server's clock {human(seconds)} ahead ({why})")

    # -------------------------------------------------------------- actions

    def _event_count(self) -> int:
        return len(self.server.store.events())

    def call(self, label: str, note: str = "", concurrency: int = 1) -> Step:
        """One ``call`` action: a new process (or instance) of the client."""
        before = self._event_count()
        result = self.adapter.run("call", self.env(concurrency), None, self.timeout)
        return self._record_step(label, note, [result], concurrency, before)

    def call_together(self, label: str, processes: int = 2) -> Step:
        """``call`` in several processes at once, sharing one state directory."""
        before = self._event_count()
        results = run_together(
            self.adapter, "call", [self.env()] * processes, self.timeout
        )
        return self._record_step(label, "", results, 1, before)

    def _record_step(
        self,
        label: str,
        note: str,
        results: list[ActionResult],
        concurrency: int,
        before: int,
    ) -> Step:
        step = Step(label, results, concurrency, self.server.store.events(before))
        self.steps.append(step)
        what = f"{concurrency} parallel requests" if concurrency > 1 else "1 request"
        if len(results) > 1:
            what = f"{len(results)} processes at once, sharing one state directory"
        outcomes = "; ".join(self.scrub(r.describe()) for r in results)
        note = f", {note}" if note else ""
        self.step(f"{label} ({what}{note}): {outcomes} — server saw: {self.saw(step)}")
        for result in results:
            if result.problem:
                self.problems.append(
                    f"adapter: {label}: {result.problem}" + _stderr_tail(result)
                )
        return step

    def saw(self, step: Step) -> str:
        """The server's view of a step, in one line."""
        known = generations(self.events())
        parts = []
        for event in step.events:
            if is_refresh(event):
                fp = event["presented_fp"]
                gen = known.get(fp)
                name = fp if gen is None else f"{fp} (gen {gen})"
                result = result_of(event)
                if result == "rotated":
                    parts.append(f"refresh {name} → new {event.get('issued_fp')}")
                elif result == "kept":
                    parts.append(f"refresh {name} → same refresh token kept")
                elif result == "lost":
                    status = event.get("status")
                    parts.append(f"refresh {name} → answer lost ({status})")
                else:
                    parts.append(
                        f"refresh {name} → {event.get('status')} {event.get('error')}"
                        f" ({event.get('reason')})"
                    )
            elif event.get("endpoint") == "resource":
                reason = event.get("reason")
                why = f" ({reason})" if reason else ""
                parts.append(f"resource {event.get('status')}{why}")
            elif event.get("endpoint") == "token":
                parts.append(
                    f"token {event.get('grant_type')} → {event.get('status')} "
                    f"{event.get('error') or ''}".rstrip()
                )
        return ", ".join(parts) or "nothing"

    # ------------------------------------------------------------- judgement

    def events(self) -> list[dict[str, Any]]:
        return self.server.store.events()

    def expect(self, condition: bool, requirement: str, text: str) -> bool:
        if not condition:
            self.problems.append(f"{requirement}: {text}")
        return condition

    def expect_exit(
        self, step: Step, allowed: tuple[int, ...], requirement: str, why: str
    ) -> bool:
        names = {0: "exit 0 (success)", 3: "exit 3 (re-authentication needed)"}
        wanted = " or ".join(names.get(code, f"exit {code}") for code in allowed)
        fine = True
        for result in step.results:
            if result.problem or result.code in allowed:
                continue
            fine = False
            said = self.scrub(result.describe())
            self.problems.append(
                f"{requirement}: {step.label} ended with {said}; expected {wanted}. "
                + why
            )
        return fine

    def finish(self, registered_auth: bool = False) -> None:
        """Judge every event of the scenario by the client rules, then fail with
        every problem found, the most telling first."""
        events = self.events()
        labels = {seq: step for step in self.steps for seq in step.seqs}

        def where(event: Mapping[str, Any]) -> str:
            step = labels.get(event.get("seq", -1))
            return step.label if step else "the set-up"

        def concurrent(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
            step = labels.get(a.get("seq", -1))
            return (
                step is not None
                and step.parallel
                and step is labels.get(b.get("seq", -1))
            )

        registered = self.mock.auth_method if registered_auth else None
        findings, _ = judge_events(events, concurrent, where, registered)
        problems = [
            f"{finding.requirement}: {finding.message}"
            for rule in RULES
            for finding in findings[rule.key]
        ]
        problems += [p for p in self.problems if p not in problems]
        self.close()
        if problems:
            self.step("verdict: " + " | ".join(self.scrub(p) for p in problems))
            pytest.fail("\n".join(self.scrub(p) for p in problems), pytrace=False)

    def close(self) -> None:
        """Put the server's side of the conversation into the record."""
        events = self.events()
        labels = {seq: step.label for step in self.steps for seq in step.seqs}
        self.record.transcript = exchanges_from_events(
            events, self._start, lambda e: labels.get(e.get("seq", -1), "set-up")
        )
        self.record.lineages = [
            lin.to_json() for lin in lineages_from_events(events, self._start)
        ]
        self.record.simulated_s = max(self.record.simulated_s, self.elapsed)


def _stderr_tail(result: ActionResult, lines: int = 3) -> str:
    tail = [line for line in result.stderr.strip().splitlines() if line.strip()]
    return f" (stderr: {' / '.join(tail[-lines:])})" if tail else ""


def record_for(function: Callable[..., Any]) -> ScenarioRecord:
    """A scenario's record built from its marker, for runs outside the plugin."""
    mark = next(m for m in getattr(function, "pytestmark", []) if m.name == "rotcert")
    doc = (function.__doc__ or "").strip()
    return ScenarioRecord(
        scenario_id=mark.kwargs["id"],
        title=doc.splitlines()[0] if doc else function.__name__,
        requirement=mark.kwargs["requirement"],
        profiles=list(mark.kwargs.get("profiles", ())),
        catches=list(mark.kwargs.get("catches", ())),
    )


@dataclass
class Outcome:
    outcome: str
    reason: str | None
    record: ScenarioRecord


def run_scenario(
    function: Callable[[ClientScenario], Any],
    mock: MockHarness,
    adapter: Adapter,
    state_dir: Path,
    clock: SharedFrozenTime | RealTime | None = None,
) -> Outcome:
    """Run one scenario function outside pytest's collection (tests, tools)."""
    record = record_for(function)
    clock = clock or (SharedFrozenTime() if adapter.in_process else RealTime())
    mock.server.reset()
    scenario = ClientScenario(mock, adapter, record, state_dir, clock)
    clock.begin()
    try:
        function(scenario)
        outcome, reason = "passed", None
    except pytest.fail.Exception as exc:
        outcome, reason = "failed", str(exc)
    except pytest.skip.Exception as exc:
        outcome, reason = "skipped", str(exc)
    finally:
        clock.end()
        scenario.close()
    record.outcome, record.reason = outcome, reason
    return Outcome(outcome, reason, record)


def frozen_or_real(adapter: Adapter, wanted: str | None) -> SharedFrozenTime | RealTime:
    """The clock for an adapter: shared frozen time in-process, else real time."""
    if wanted in (None, "", "freeze", "shared"):
        if adapter.in_process:
            return SharedFrozenTime()
        if wanted in ("freeze", "shared"):
            raise ValueError(
                "--rotcert-time freeze needs an in-process (Python) adapter; a "
                "command adapter's clock cannot be moved, use wait"
            )
        return RealTime()
    if wanted in ("wait", "real"):
        return RealTime()
    raise ValueError(f"--rotcert-time is freeze or wait for clients, not {wanted!r}")


def catalogue() -> dict[str, tuple[Callable[..., Any], dict[str, Any]]]:
    """Every client scenario by id: its function and its marker's arguments."""
    found = {}
    package = importlib.import_module("conformance.client_scenarios")
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("test_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for name in dir(module):
            function = getattr(module, name)
            marks = getattr(function, "pytestmark", [])
            marks = [m for m in marks if m.name == "rotcert"]
            if name.startswith("test_") and marks:
                found[marks[0].kwargs["id"]] = (function, dict(marks[0].kwargs))
    return found
