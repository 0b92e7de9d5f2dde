"""What a server scenario works with: families, refreshes, time, expectations.

Every helper records a step, every request lands in the transcript, every token
seen lands in the family's lineage, and every failure message says what was
expected, what the server did, and which requirement that breaks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from mock_server.tokens import fingerprint

from .grants import GrantError, GrantSource
from .http import HttpClient, Reply
from .lineage import Lineage
from .report import ScenarioRecord
from .target import ClientCredentials, ServerTarget
from .timecontrol import TimeControl, human

__all__ = ["Family", "ServerScenario", "not_applicable", "cannot_check"]

NOT_APPLICABLE = "not applicable: "
CANNOT_CHECK = "cannot check: "


def not_applicable(reason: str):
    """The declared policy makes this scenario meaningless; it is left out of the
    verdict."""
    pytest.skip(NOT_APPLICABLE + reason)


def cannot_check(reason: str):
    """The scenario applies but could not run here; the verdict is incomplete."""
    pytest.skip(CANNOT_CHECK + reason)


@dataclass
class Family:
    """One grant as the suite sees it: the newest tokens and their lineage."""

    refresh_token: str
    access_token: str | None
    scope: str | None
    lineage: Lineage
    generation: int = 0
    tokens: list[str] = field(default_factory=list)

    def token(self, generation: int) -> str:
        return self.tokens[generation]


class ServerScenario:
    def __init__(
        self,
        target: ServerTarget,
        grants: GrantSource,
        time: TimeControl,
        record: ScenarioRecord,
        http: HttpClient,
        race_threads: int,
        race_rounds: int,
    ) -> None:
        self.target = target
        self.policy = target.policy
        self.grants = grants
        self.time = time
        self.record = record
        self.http = http
        self.race_threads = race_threads
        self.race_rounds = race_rounds
        self.elapsed = 0.0
        self.families: list[Family] = []

    # ------------------------------------------------------------------ steps

    def step(self, text: str) -> None:
        when = f"[t+{human(self.elapsed)}] " if self.elapsed else ""
        self.record.steps.append(when + text)

    def fail(self, requirement: str, text: str) -> None:
        # The scenario id leads, so a JUnit failure message names it too.
        pytest.fail(f"[{self.record.scenario_id}] {requirement}: {text}", pytrace=False)

    # ---------------------------------------------------------------- families

    def new_family(self, scope: str | None = None, label: str = "") -> Family:
        self.step(f"mint a fresh family{' ' + label if label else ''}")
        try:
            body = self.grants.mint(self.http, self.target.client, scope)
        except GrantError as exc:
            if exc.exhausted:
                cannot_check(str(exc))
            pytest.fail(f"could not mint a family: {exc}", pytrace=False)
        for name in ("refresh_token", "access_token"):
            if not isinstance(body.get(name), (str, type(None))):
                self.fail(
                    "STD-RT-10",
                    f"the grant's {name} is a JSON {type(body[name]).__name__}, "
                    "not a string",
                )
        lineage = Lineage(label or f"family {len(self.families) + 1}")
        family = Family(
            refresh_token=body["refresh_token"],
            access_token=body.get("access_token"),
            scope=body.get("scope"),
            lineage=lineage,
            tokens=[body["refresh_token"]],
        )
        self.http.redactor.add(body["refresh_token"], "refresh_token")
        self.http.redactor.add(body.get("access_token"), "access_token")
        lineage.issued(body["refresh_token"], 0, self.elapsed)
        self.families.append(family)
        self.record.lineages.append(lineage)
        return family

    def refresh(
        self,
        token: str,
        *,
        client: ClientCredentials | None = None,
        scope: str | None = None,
        step: str = "",
        extra: dict[str, str] | None = None,
        auth_override: tuple[str, str] | None = None,
    ) -> Reply:
        """One refresh request; the reply is returned whatever it is."""
        client = client or self.target.client
        form, auth = client.form_and_auth()
        form.update(grant_type="refresh_token", refresh_token=token)
        if scope is not None:
            form["scope"] = scope
        if extra:
            form.update(extra)
        if auth_override is not None:
            auth = auth_override
        text = step or f"refresh with {fingerprint(token)}"
        self.step(text)
        return self.http.post_form(
            self.target.endpoints.token, form, auth=auth, step=text
        )

    def rotate(
        self,
        family: Family,
        why: str = "",
        scope: str | None = None,
        requirement: str = "STD-RT-10",
    ) -> dict:
        """Refresh with the family's newest token, which must succeed. A scenario
        whose point is that this refresh works names its own requirement."""
        presented = family.refresh_token
        reply = self.refresh(
            presented,
            scope=scope,
            step=why
            or f"refresh with the newest token (generation {family.generation})",
        )
        body = self.expect_ok(
            reply, "a refresh with the family's newest token", requirement
        )
        family.lineage.consumed(presented, self.elapsed)
        family.access_token = body.get("access_token")
        new = body.get("refresh_token")
        if new is not None and not isinstance(new, str):
            self.fail(
                "STD-RT-10",
                f"refresh_token is a JSON {type(new).__name__}, not a string",
            )
        if new and new != presented:
            family.generation += 1
            family.refresh_token = new
            family.tokens.append(new)
            family.lineage.issued(new, family.generation, self.elapsed)
        return body

    # -------------------------------------------------------------------- time

    def needs_time(self, seconds: float, why: str) -> None:
        """Declare up front how much time the scenario must let pass, so one that
        cannot get it is skipped at once, with the true total, not half-way."""
        reason = self.time.cannot_advance(seconds)
        if reason is not None:
            cannot_check(f"{why}: {reason}")

    def advance(self, seconds: float, why: str = "") -> None:
        reason = self.time.cannot_advance(seconds)
        if reason is not None:
            cannot_check(reason)
        self.time.advance(seconds)
        self.elapsed += seconds
        self.record.simulated_s = self.elapsed
        self.step(f"let {human(seconds)} pass" + (f" ({why})" if why else ""))

    def outlast_grace(self) -> None:
        """Replays inside a declared grace period are tolerated; step past it."""
        if self.policy.grace > 0:
            self.advance(self.policy.grace + 1, "past the declared grace period")

    # ------------------------------------------------------------ expectations

    def what_happened(self, reply: Reply) -> str:
        """The reply in a few words: its diagnosis, or status, error and
        description."""
        if reply.diagnosis:
            return reply.diagnosis
        error = reply.error
        if error:
            desc = (reply.json or {}).get("error_description")
            return f"HTTP {reply.status} {error}" + (f" ({desc})" if desc else "")
        return f"HTTP {reply.status}"

    @staticmethod
    def succeeded(reply: Reply) -> bool:
        """A real token response, not merely a 200 (a login page is a 200 too)."""
        return (
            reply.status == 200
            and isinstance(reply.json, dict)
            and bool(reply.json.get("access_token"))
        )

    @staticmethod
    def oauth_error(reply: Reply) -> bool:
        """A well-formed OAuth error: 4xx with a JSON error member."""
        return (
            reply.status is not None and 400 <= reply.status < 500 and bool(reply.error)
        )

    def expect_ok(self, reply: Reply, what: str, requirement: str = "STD-RT-10"):
        if reply.status == 200 and isinstance(reply.json, dict):
            body = reply.json
            if body.get("access_token"):
                return body
            self.fail(requirement, f"{what}: 200 without an access_token")
        self.fail(
            requirement,
            f"expected {what} to succeed; got " + self.what_happened(reply),
        )

    def expect_rejected(self, reply: Reply, what: str, requirement: str) -> None:
        """Any well-formed OAuth error (4xx, JSON with an error member)."""
        if self.oauth_error(reply):
            return
        if self.succeeded(reply):
            issued = (reply.json or {}).get("refresh_token")
            extra = f" and issued {fingerprint(str(issued))}" if issued else ""
            self.fail(
                requirement, f"expected {what} to be rejected; it succeeded{extra}"
            )
        self.fail(
            requirement,
            f"expected {what} to be rejected with an OAuth error (4xx JSON); got "
            + self.what_happened(reply),
        )

    def expect_declared_error(self, reply: Reply, what: str, requirement: str) -> None:
        """The exact error shape the declared policy promises for a bad token."""
        self.expect_rejected(reply, what, requirement)
        body = reply.json or {}
        if self.policy.invalid_refresh_token_error == "databricks":
            wanted = ("invalid_request", "Refresh token is invalid")
            got = (body.get("error"), body.get("error_description"))
            if got != wanted or reply.status not in (400, 401):
                self.fail(
                    requirement,
                    f"{what}: the declared policy promises Databricks' error "
                    '(400/401 {"error":"invalid_request","error_description":'
                    '"Refresh token is invalid"}); got ' + self.what_happened(reply),
                )
            return
        if reply.status != 400 or body.get("error") != "invalid_grant":
            self.fail(
                requirement,
                f"{what}: RFC 6749 §5.2 requires 400 invalid_grant; got "
                + self.what_happened(reply),
            )

    def expect_error(self, reply: Reply, status: int, error: str, what: str, req: str):
        if reply.status == status and reply.error == error:
            return
        self.fail(
            req,
            f"{what}: expected {status} {error}; got " + self.what_happened(reply),
        )

    # ----------------------------------------------------- access token probes

    def access_alive(self, access_token: str, label: str) -> bool | None:
        """Is an access token still accepted? None when nothing can tell."""
        ends = self.target.endpoints
        if ends.introspection:
            form, auth = self.target.client.form_and_auth()
            form["token"] = access_token
            reply = self.http.post_form(
                ends.introspection, form, auth=auth, step=f"introspect {label}"
            )
            self.step(f"introspect {label}")
            if reply.status == 200 and isinstance(reply.json, dict):
                return reply.json.get("active") is True
        if ends.resource:
            reply = self.http.get(
                ends.resource,
                headers={"Authorization": f"Bearer {access_token}"},
                step=f"call the resource with {label}",
            )
            self.step(f"call the protected resource with {label}")
            if reply.status == 200:
                return True
            if reply.status == 401:
                return False
        return None
