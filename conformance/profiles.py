"""Profiles and the verdict.

A profile is a named set of scenarios (each scenario's marker lists the profiles
it belongs to). A profile is certified when every one of its scenarios that
applies to the declared policy passed. A scenario that applies but could not run
(no introspection endpoint, no wait budget, no second client) makes the verdict
incomplete, which is not certified: nothing is ever passed unchecked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mock_server.policy import Policy

__all__ = [
    "SERVER_PROFILES",
    "CLIENT_PROFILES",
    "Result",
    "Verdict",
    "default_server_profiles",
    "judge",
]

SERVER_PROFILES = {
    "rfc9700": "RFC 9700 §4.14.2: rotation, reuse rejected, family revoked, atomic",
    "oauth21": "OAuth 2.1 §4.3: rfc9700 plus revoking the grant's access tokens, "
    "RFC 6749 errors, scope rules, RFC 7009 revocation",
    "databricks": "the declared token_access_policy obeyed: TTLs, absolute "
    "lifetime, the declared error shape",
    "multi-use": "a server with rotation off: the refresh token keeps working",
}

CLIENT_PROFILES = {
    "single-use-client": "copes with single-use refresh tokens, strict and with a "
    "30 s grace period: RFC 6749 §6, RFC 9700 §4.14.2 and OAuth 2.1 client duties",
    "databricks-client": "copes with Databricks' single-use refresh tokens: strict "
    "rotation, an absolute session lifetime, invalid_request for a dead token",
    "recorded-client": "a recording of the client (rotcert audit) breaks none of "
    "the rules a recording can judge",
}

NOT_APPLICABLE = "not applicable: "


@dataclass
class Result:
    scenario_id: str
    title: str
    profiles: list[str]
    outcome: str  # passed | failed | skipped
    reason: str | None = None

    @property
    def applies(self) -> bool:
        return not (
            self.outcome == "skipped" and (self.reason or "").startswith(NOT_APPLICABLE)
        )


@dataclass
class Verdict:
    profile: str
    description: str
    certified: bool
    incomplete: bool
    passed: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    not_run: list[dict[str, str]] = field(default_factory=list)
    not_applicable: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.certified:
            return "CERTIFIED"
        return "NOT CERTIFIED (incomplete)" if self.incomplete else "NOT CERTIFIED"

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "description": self.description,
            "status": self.status,
            "certified": self.certified,
            "incomplete": self.incomplete,
            "passed": self.passed,
            "failed": self.failed,
            "not_run": self.not_run,
            "not_applicable": self.not_applicable,
        }


def default_server_profiles(policy: Policy) -> list[str]:
    """What a server declaring this policy claims: the profiles it can meet."""
    if policy.single_use:
        return ["rfc9700", "oauth21", "databricks"]
    return ["multi-use", "databricks"]


def judge(profile: str, description: str, results: list[Result]) -> Verdict:
    verdict = Verdict(profile, description, certified=False, incomplete=False)
    for result in sorted(results, key=lambda r: r.scenario_id):
        if profile not in result.profiles:
            continue
        line = {"id": result.scenario_id, "reason": result.reason or ""}
        if not result.applies:
            verdict.not_applicable.append(result.scenario_id)
        elif result.outcome == "passed":
            verdict.passed.append(result.scenario_id)
        elif result.outcome == "failed":
            verdict.failed.append(line)
        else:
            verdict.not_run.append(line)
    verdict.incomplete = bool(verdict.not_run) or not (verdict.passed or verdict.failed)
    verdict.certified = not verdict.failed and not verdict.incomplete
    return verdict
