"""Client rules judged from the mock server's events, and ``rotcert audit``.

The mock server records every token and resource request as an event, with token
fingerprints only. The rules here read those events; the client scenarios apply
them to what they just made a client do, and ``rotcert audit`` applies them to a
recording made with ``rotcert serve --record`` while any client was used by hand.

Each event says when its request arrived and when it was answered, so the audit
calls presentations of one token that overlapped in time parallel and ones made
one after the other reuse (recordings without arrival times fall back to "less
than PARALLEL_WINDOW_S apart"); a scenario knows which requests it started
together and says so exactly.
"""

from __future__ import annotations

import json
import math
import os
import stat
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .http import Exchange, json_kind
from .lineage import Lineage, format_duration
from .profiles import CLIENT_PROFILES, Result, judge
from .report import ScenarioRecord, scenario_html, verdict_html, write_summary

__all__ = [
    "AUDIT_PROFILE",
    "PARALLEL_WINDOW_S",
    "RULES",
    "AuditError",
    "Finding",
    "Rule",
    "audit_events",
    "exchanges_from_events",
    "generations",
    "overlapping",
    "judge_events",
    "lineages_from_events",
    "load_events",
    "write_reports",
]

PARALLEL_WINDOW_S = 1.0
# A recorded event is a few hundred bytes; a longer line is not an event.
MAX_LINE_BYTES = 64 * 1024
AUDIT_PROFILE = "recorded-client"

# Why the mock refused a refresh token itself (as opposed to the request).
DEAD_TOKEN_REASONS = frozenset(
    {
        "unknown_refresh_token",
        "wrong_client",
        "family_revoked",
        "revoked",
        "expired",
        "session_expired",
        "reuse_detected",
    }
)
CLIENT_AUTH_REASONS = {
    "two_auth_methods": "sent more than one client authentication method",
    "no_client_auth": "sent no client authentication",
    "client_id_mismatch": "sent a body client_id that differs from its Basic one",
    "malformed_basic": "sent a malformed Basic Authorization header",
    "unsupported_auth_scheme": "sent an Authorization header that is not Basic",
}


class AuditError(Exception):
    """The recording cannot be read; the message names the line and the fix."""


@dataclass(frozen=True)
class Rule:
    key: str
    scenario_id: str
    requirement: str
    title: str


RULES = (
    Rule(
        "reuse",
        "A-REUSE-01",
        "STD-RT-C01",
        "A refresh token is never presented again once its successor was delivered",
    ),
    Rule(
        "parallel",
        "A-PAR-01",
        "STD-RT-C14",
        "One refresh token is never redeemed by several requests at once",
    ),
    Rule(
        "storm",
        "A-STORM-01",
        "STD-RT-C13",
        "A refused refresh token is never presented again (no refresh storm)",
    ),
    Rule(
        "scope",
        "A-SCOPE-01",
        "STD-RT-C03",
        "A refresh never asks for more scope than the grant holds",
    ),
    Rule(
        "resource",
        "A-RS-01",
        "STD-RT-C08",
        "The refresh token is never sent to the resource server",
    ),
    Rule(
        "client_auth",
        "A-AUTH-01",
        "STD-RT-C05",
        "Every token request carries exactly one client authentication method",
    ),
)
RULES_BY_KEY = {rule.key: rule for rule in RULES}


@dataclass(frozen=True)
class Finding:
    """One broken rule, said so that the client's maintainer can act on it."""

    rule: str
    message: str
    seqs: tuple[int, ...] = ()

    @property
    def requirement(self) -> str:
        return RULES_BY_KEY[self.rule].requirement


# ---------------------------------------------------------------- events


def is_refresh(event: Mapping[str, Any]) -> bool:
    return (
        event.get("endpoint") == "token"
        and event.get("grant_type") == "refresh_token"
        and bool(event.get("presented_fp"))
    )


def result_of(event: Mapping[str, Any]) -> str:
    """lost | rotated | kept | rejected | refused, as the client experienced it."""
    status = event.get("status")
    if event.get("fault") or not isinstance(status, int) or status >= 500:
        return "lost"
    if status == 200:
        issued = event.get("issued_fp")
        return "rotated" if issued and issued != event.get("presented_fp") else "kept"
    if event.get("error") == "invalid_grant" or event.get("reason") in (
        DEAD_TOKEN_REASONS
    ):
        return "rejected"
    return "refused"


def generations(events: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Each refresh token fingerprint's generation, as far as events tell."""
    found: dict[str, int] = {}
    for event in events:
        generation = event.get("generation")
        if not isinstance(generation, int):
            continue
        issued = event.get("issued_fp")
        if issued and issued != event.get("presented_fp"):
            found.setdefault(issued, generation)
        elif event.get("presented_fp") and event.get("status") != 200:
            found.setdefault(event["presented_fp"], generation)
    return found


def _name(fp: str, known: Mapping[str, int]) -> str:
    generation = known.get(fp)
    return fp if generation is None else f"{fp} (generation {generation})"


def _outcome(event: Mapping[str, Any]) -> str:
    result = result_of(event)
    if result in ("rejected", "refused"):
        return f"{result} ({event.get('error')}, {event.get('reason')})"
    return result


Concurrent = Callable[[Mapping[str, Any], Mapping[str, Any]], bool]


def overlapping(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Were two recorded requests in flight at the same time?"""
    if "started" in a and "started" in b:
        # The mock records when each request arrived and when it was answered.
        return float(a["started"]) <= float(b["time"]) and float(b["started"]) <= float(
            a["time"]
        )
    return abs(float(b.get("time", 0)) - float(a.get("time", 0))) <= PARALLEL_WINDOW_S


Where = Callable[[Mapping[str, Any]], str]


def refresh_findings(
    events: list[Mapping[str, Any]], concurrent: Concurrent, where: Where
) -> list[Finding]:
    """Reuse after rotation, parallel redemption, and retries of a dead token."""
    known = generations(events)
    by_token: dict[str, list[Mapping[str, Any]]] = {}
    for event in events:
        if is_refresh(event):
            by_token.setdefault(event["presented_fp"], []).append(event)

    findings = []
    for fp, presented in by_token.items():
        findings.extend(_token_findings(fp, presented, concurrent, where, known))
    return findings


def _clash(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Two presentations of one token conflict when either was spent or refused;
    a multi-use token (kept) may be presented by many requests."""
    return bool({result_of(a), result_of(b)} & {"rotated", "rejected"})


def _token_findings(
    fp: str,
    presented: list[Mapping[str, Any]],
    concurrent: Concurrent,
    where: Where,
    known: Mapping[str, int],
) -> list[Finding]:
    successor = rejection = None
    reuse: list[Mapping[str, Any]] = []
    storm: list[Mapping[str, Any]] = []
    parallel: list[Mapping[str, Any]] = []
    judged: list[Mapping[str, Any]] = []
    for event in presented:
        result = result_of(event)
        burst = [o for o in presented if o is not event and concurrent(o, event)]
        # Requests at the same time of which one spent the token are a race; a
        # burst in which every answer was a refusal is a retry storm.
        spent = "rotated" in {result, *(result_of(o) for o in burst)}
        earlier = [o for o in judged if concurrent(o, event) and _clash(o, event)]
        if successor is not None and not concurrent(successor, event):
            reuse.append(event)
        elif rejection is not None and not concurrent(rejection, event):
            storm.append(event)
        elif earlier:
            (parallel if spent else storm).append(event)
        if result in ("rotated", "kept", "rejected"):
            judged.append(event)
        if result == "rotated" and successor is None:
            successor = event
        if result == "rejected" and rejection is None:
            rejection = event

    name = _name(fp, known)
    findings = []
    if reuse:
        assert successor is not None
        first = reuse[0]
        findings.append(
            Finding(
                "reuse",
                f"{where(first)} presented refresh token {name} again although "
                f"{where(successor)} had already delivered its successor "
                f"{successor.get('issued_fp')} ({len(reuse)} such request"
                f"{'s' if len(reuse) > 1 else ''}; the server answered: "
                f"{_outcome(first)}). After a rotation the client must use and "
                "persist the new refresh token and never the old one (RFC 6749 §6).",
                tuple(e["seq"] for e in reuse if "seq" in e),
            )
        )
    if storm:
        assert rejection is not None
        findings.append(
            Finding(
                "storm",
                f"{where(storm[0])} presented refresh token {name} again although "
                f"the server had refused it ({where(rejection)}: "
                f"{rejection.get('error')}, {rejection.get('reason')}); "
                f"{len(storm)} request{'s' if len(storm) > 1 else ''} after the "
                "refusal. A refused refresh token never works again: stop using it "
                "and report that the user must log in (no retry loop).",
                tuple(e["seq"] for e in storm if "seq" in e),
            )
        )
    if parallel:
        group = [e for e in presented if e in parallel or e in judged][:12]
        outcomes = ", ".join(_outcome(e) for e in group)
        findings.append(
            Finding(
                "parallel",
                f"{len(parallel) + 1} requests presented refresh token {name} at the "
                f"same time ({where(parallel[0])}); outcomes: {outcomes}. Only one "
                "refresh per token may be in flight: serialize refreshes "
                "(single-flight) and let the other requests wait for its result.",
                tuple(e["seq"] for e in group if "seq" in e),
            )
        )
    return findings


def _granted_scopes(events: Iterable[Mapping[str, Any]]) -> dict[str, set[str]]:
    granted: dict[str, set[str]] = {}
    for event in events:
        family = event.get("family_id")
        scope = event.get("scope_granted")
        issuing = event.get("endpoint") == "admin_grant" or (
            event.get("endpoint") == "token"
            and event.get("grant_type") == "authorization_code"
        )
        if family and issuing and isinstance(scope, str):
            granted.setdefault(family, set(scope.split()))
    return granted


def scope_findings(events: list[Mapping[str, Any]], where: Where) -> list[Finding]:
    granted = _granted_scopes(events)
    findings = []
    for event in events:
        if not is_refresh(event):
            continue
        asked = set(str(event.get("scope_requested") or "").split())
        extra = asked - granted.get(event.get("family_id") or "", asked)
        if event.get("reason") == "scope_broadened" or extra:
            shown = " ".join(sorted(extra)) or "(see the server's refusal)"
            findings.append(
                Finding(
                    "scope",
                    f"{where(event)} asked for scope {event.get('scope_requested')!r}"
                    f", beyond the granted scope: {shown}. A refresh must not ask "
                    "for a scope that was not granted; leave scope out to keep the "
                    "granted one (RFC 6749 §6).",
                    (event["seq"],) if "seq" in event else (),
                )
            )
    return findings


def resource_findings(events: list[Mapping[str, Any]], where: Where) -> list[Finding]:
    refresh_fps = {e.get("issued_fp") for e in events if e.get("issued_fp")}
    refresh_fps |= {e["presented_fp"] for e in events if is_refresh(e)}
    findings = []
    for event in events:
        if event.get("endpoint") != "resource":
            continue
        if (
            event.get("reason") == "refresh_token_at_resource"
            or event.get("presented_fp") in refresh_fps
        ):
            findings.append(
                Finding(
                    "resource",
                    f"{where(event)} sent refresh token {event.get('presented_fp')} "
                    "to the resource server as a bearer token. Only the token "
                    "endpoint may ever see a refresh token (RFC 6749 §1.5).",
                    (event["seq"],) if "seq" in event else (),
                )
            )
    return findings


def auth_findings(
    events: list[Mapping[str, Any]], where: Where, registered: str | None = None
) -> list[Finding]:
    findings = []
    for event in events:
        if event.get("endpoint") != "token":
            continue
        reason = event.get("reason")
        method = event.get("auth_method")
        if reason in CLIENT_AUTH_REASONS:
            text = CLIENT_AUTH_REASONS[reason]
        elif registered and method and method != registered:
            text = f"authenticated with {method}, not the registered {registered}"
        else:
            continue
        findings.append(
            Finding(
                "client_auth",
                f"{where(event)} {text}. A confidential client authenticates every "
                "token request with its registered method, and with exactly one "
                "method (RFC 6749 §2.3).",
                (event["seq"],) if "seq" in event else (),
            )
        )
    return findings


def judge_events(
    events: list[Mapping[str, Any]],
    concurrent: Concurrent,
    where: Where,
    registered: str | None = None,
) -> tuple[dict[str, list[Finding]], set[str]]:
    """Every rule's findings, and the rules the events gave something to judge."""
    findings: dict[str, list[Finding]] = {rule.key: [] for rule in RULES}
    found = [
        *refresh_findings(events, concurrent, where),
        *scope_findings(events, where),
        *resource_findings(events, where),
        *auth_findings(events, where, registered),
    ]
    for finding in found:
        findings[finding.rule].append(finding)
    judged = set()
    if any(is_refresh(e) for e in events):
        judged |= {"reuse", "parallel", "storm", "scope"}
    if any(e.get("endpoint") == "resource" for e in events):
        judged.add("resource")
    if any(e.get("endpoint") == "token" for e in events):
        judged.add("client_auth")
    return findings, judged


# ------------------------------------------------------- report material


def lineages_from_events(
    events: list[Mapping[str, Any]], start: float
) -> list[Lineage]:
    """One lineage per grant family, drawn from issues, rotations and refusals."""
    families: dict[str, Lineage] = {}

    def family(event: Mapping[str, Any]) -> Lineage | None:
        family_id = event.get("family_id")
        if not family_id:
            return None
        if family_id not in families:
            families[family_id] = Lineage(str(family_id))
        return families[family_id]

    for event in events:
        lineage = family(event)
        if lineage is None:
            continue
        at = float(event.get("time", start)) - start
        issued = event.get("issued_fp")
        if event.get("endpoint") in ("admin_grant",) or (
            event.get("grant_type") == "authorization_code" and issued
        ):
            if issued:  # a hand-made recording may leave out what was issued
                lineage.issued(issued, 0, at)
            continue
        if not is_refresh(event):
            continue
        result = result_of(event)
        presented = event["presented_fp"]
        if result == "rotated":
            lineage.consumed(presented, at, event.get("outcome"))
            if lineage.generation_of(issued) is None:
                lineage.issued(issued, int(event.get("generation") or 0), at)
        elif result == "rejected":
            lineage.rejected(presented, at, str(event.get("reason")))
    return list(families.values())


def exchanges_from_events(
    events: list[Mapping[str, Any]],
    start: float,
    label: Callable[[Mapping[str, Any]], str] | None = None,
) -> list[dict[str, Any]]:
    """The server's side of the conversation, one pseudo-exchange per event.

    Events hold fingerprints, never tokens, so nothing here needs redacting.
    """
    shown = []
    for event in events:
        endpoint = event.get("endpoint")
        if endpoint not in ("token", "resource", "admin_grant", "admin_revoke"):
            continue
        request: list[str] = []
        if endpoint == "token":
            request = [
                f"grant_type={event.get('grant_type')}",
                f"refresh_token={event.get('presented_fp')}",
            ]
            if event.get("scope_requested"):
                request.append(f"scope={event['scope_requested']}")
        answer = {
            key: event[key]
            for key in (
                "outcome",
                "issued_fp",
                "generation",
                "error",
                "reason",
                "fault",
                "auth_method",
                "family_id",
            )
            if event.get(key) is not None
        }
        at = float(event.get("time", start)) - start
        step = (label(event) + " · ") if label else ""
        method = "GET" if endpoint == "resource" else "POST"
        headers = {}
        if endpoint == "resource" and event.get("presented_fp"):
            headers["Authorization"] = f"Bearer {event['presented_fp']}"
        shown.append(
            Exchange(
                step=f"{step}t+{at:.1f} s (event {event.get('seq', '?')})",
                method=method,
                url=f"/{endpoint}",
                request_headers=headers,
                request_body="&".join(request),
                status=event.get("status"),
                response_headers={},
                response_body=json.dumps(answer),
                elapsed_ms=0.0,
            ).to_json()
        )
    return shown


# ------------------------------------------------------------------ audit


def load_events(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """A recording's events, in order; every way it can be unreadable is said."""
    events = []
    with _open_recording(path) as file:
        for number, raw in _lines(file, path):
            event = _event(raw, path, number)
            if event is not None:
                events.append(event)

    if not events:
        raise AuditError(f"{path} holds no events; record one with serve --record.")
    events.sort(key=lambda e: e["seq"])
    return events


def _open_recording(path: str | os.PathLike[str]) -> BinaryIO:
    """The recording, opened to be read line by line: a regular file only."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer that never comes.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise AuditError(f"cannot read {str(path)!r}: {exc.strerror or exc}.") from None

    file = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        file.close()
        raise AuditError(
            f"{str(path)!r} is not a regular file; give the events file that "
            "rotcert serve --record wrote."
        )
    return file


def _lines(file: BinaryIO, path: str | os.PathLike[str]) -> Iterator[tuple[int, bytes]]:
    """Numbered lines, none read past MAX_LINE_BYTES: whatever the file holds,
    the audit's memory stays bounded by what it keeps."""
    number = 0
    while raw := file.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            raise AuditError(
                f"{path}: line {number} is longer than {MAX_LINE_BYTES} bytes; "
                "a recorded event is one short JSON object per line."
            )
        yield number, raw


def _event(
    raw: bytes, path: str | os.PathLike[str], number: int
) -> dict[str, Any] | None:
    """One line's event (None for a blank line), its fields checked."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise AuditError(f"{path}: line {number} is not UTF-8 text.") from None
    if not line.strip():
        return None

    try:
        event = json.loads(line)
    except RecursionError:
        raise AuditError(
            f"{path}: line {number} is JSON nested too deeply to be an event."
        ) from None
    except ValueError as exc:
        raise AuditError(
            f"{path}: line {number} is not JSON ({exc}); a recording has one "
            "JSON object per line, as rotcert serve --record writes it."
        ) from None
    if not isinstance(event, dict):
        raise AuditError(f"{path}: line {number} is not a JSON object.")

    problem = _field_problem(event)
    if problem:
        raise AuditError(f"{path}: line {number}: {problem}.")
    if event.get("seq") is None:
        event["seq"] = number
    return event


# The fields the rules read, by the JSON type each must have when present; null
# stands for absent. Checked up front so that no rule meets a list where it
# expects a fingerprint (a list cannot be a dict key) or text where a time goes.
TEXT_FIELDS = (
    "endpoint",
    "grant_type",
    "presented_fp",
    "issued_fp",
    "family_id",
    "scope_requested",
    "scope_granted",
    "error",
    "reason",
    "fault",
    "outcome",
    "auth_method",
    "client_id",
)
INTEGER_FIELDS = ("seq", "status", "generation")
TIME_FIELDS = ("time", "started")


def _field_problem(event: dict[str, Any]) -> str | None:
    """What is wrong with an event's fields, or None; null times are dropped."""
    for name in TIME_FIELDS:
        if event.get(name) is None:
            event.pop(name, None)
    for name, value in event.items():
        if value is None:
            continue
        if name in TEXT_FIELDS and not isinstance(value, str):
            return f"field {name!r} is a JSON {json_kind(value)}; it must be a string"
        if name in INTEGER_FIELDS and not _is_integer(value):
            return f"field {name!r} is a JSON {json_kind(value)}; it must be an integer"
        if name in TIME_FIELDS and not _is_time(value):
            return (
                f"field {name!r} is a JSON {json_kind(value)}; it must be a time in "
                "seconds (a finite number)"
            )
    if "started" in event and "time" not in event:
        return "field 'started' comes without 'time' (when it was answered)"
    return None


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_time(value: Any) -> bool:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return number and math.isfinite(value)


def audit_events(events: list[dict[str, Any]]) -> list[ScenarioRecord]:
    """Every rule a recording can judge, as one scenario record each."""
    start = float(events[0].get("time", 0.0))

    def where(event: Mapping[str, Any]) -> str:
        at = float(event.get("time", start)) - start
        client = event.get("client_id")
        by = f", client {client}" if client else ""
        return f"request {event.get('seq')} (t+{format_duration(at)}{by})"

    findings, judged = judge_events(events, overlapping, where)
    lineages = [lin.to_json() for lin in lineages_from_events(events, start)]
    records = []
    for rule in RULES:
        record = ScenarioRecord(
            scenario_id=rule.scenario_id,
            title=rule.title,
            requirement=rule.requirement,
            profiles=[AUDIT_PROFILE],
            simulated_s=float(events[-1].get("time", start)) - start,
        )
        found = findings[rule.key]
        cited = {seq for f in found for seq in f.seqs}
        if found:
            record.outcome = "failed"
            record.reason = f"{rule.requirement}: {found[0].message}"
            record.steps = [f.message for f in found]
            record.transcript = exchanges_from_events(
                [e for e in events if e.get("seq") in cited], start
            )
            record.lineages = lineages
        elif rule.key in judged:
            record.outcome = "passed"
            record.steps = [f"judged {len(events)} recorded events: nothing broke it"]
        else:
            record.outcome = "skipped"
            record.reason = "not applicable: the recording has no request this rule "
            record.reason += "judges"
        records.append(record)
    return records


def verdicts_for(records: list[ScenarioRecord]) -> list[dict[str, Any]]:
    results = [
        Result(r.scenario_id, r.title, r.profiles, r.outcome, r.reason) for r in records
    ]
    return [judge(AUDIT_PROFILE, CLIENT_PROFILES[AUDIT_PROFILE], results).to_json()]


def write_reports(
    out: Path,
    records: list[ScenarioRecord],
    verdicts: list[dict[str, Any]],
    target: dict[str, Any],
    title: str = "rotcert audit",
) -> None:
    """report.html, junit.xml and summary.json, as a pytest-driven run writes."""
    out.mkdir(parents=True, exist_ok=True)
    sections = "\n".join(scenario_html(r) for r in records)
    (out / "report.html").write_text(
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{title}</title></head><body>\n<h1>{title}</h1>\n"
        + verdict_html(verdicts, target)
        + "\n"
        + sections
        + "\n</body></html>\n",
        encoding="utf-8",
    )
    write_summary(out / "summary.json", verdicts, records, target)
    _write_junit(out / "junit.xml", records, title)


def _write_junit(path: Path, records: list[ScenarioRecord], title: str) -> None:
    suite = ET.Element(
        "testsuite",
        name=title,
        tests=str(len(records)),
        failures=str(sum(r.outcome == "failed" for r in records)),
        skipped=str(sum(r.outcome == "skipped" for r in records)),
    )
    for record in records:
        case = ET.SubElement(
            suite, "testcase", classname="rotcert.audit", name=record.scenario_id
        )
        if record.outcome == "failed":
            failure = ET.SubElement(case, "failure", message=record.reason or "")
            failure.text = "\n".join(record.steps)
        elif record.outcome == "skipped":
            ET.SubElement(case, "skipped", message=record.reason or "")
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
