"""The report's pieces: one HTML section per scenario, the verdict banner, and the
JSON summary for CI.

The target controls error descriptions, header values and URLs, so every value
is redacted and then escaped here, whatever its origin. Nothing the target sent
becomes a link, an attribute that runs code, or markup.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

from .http import Exchange
from .lineage import Lineage, format_duration, lineage_svg
from .redact import Redactor

__all__ = [
    "OUTCOMES",
    "ScenarioRecord",
    "scenario_anchor",
    "scenario_html",
    "verdict_html",
    "write_summary",
]

OUTCOMES = ("passed", "failed", "skipped")

OUTCOME_COLOURS = {"passed": "#2f855a", "failed": "#c53030", "skipped": "#975a16"}

REASON_HEADINGS = {
    "failed": "Why it failed",
    "skipped": "Why it did not run",
    "passed": "Note",
}

PRE_STYLE = (
    "white-space:pre-wrap;word-break:break-all;background:#f7fafc;"
    "border:1px solid #e2e8f0;padding:6px;margin:4px 0;font-size:12px"
)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rotcert")
    except PackageNotFoundError:
        return "unknown"


@dataclass
class ScenarioRecord:
    """Everything the report shows about one scenario's run."""

    scenario_id: str
    title: str
    requirement: str
    profiles: list[str] = field(default_factory=list)
    outcome: str = "passed"
    reason: str | None = None
    steps: list[str] = field(default_factory=list)
    transcript: list[dict[str, Any]] = field(default_factory=list)
    lineages: list[dict[str, Any]] = field(default_factory=list)
    duration_s: float = 0.0
    simulated_s: float = 0.0
    catches: list[str] = field(default_factory=list)

    def to_json(self, transcript: bool = True) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["profiles"] = list(self.profiles)
        data["steps"] = list(self.steps)
        data["catches"] = list(self.catches)
        data["transcript"] = [_exchange_json(e) for e in self.transcript]
        data["lineages"] = [_lineage_json(lin) for lin in self.lineages]
        if not transcript:
            del data["transcript"]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScenarioRecord:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _exchange_json(exchange: Exchange | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(exchange, Exchange):
        return exchange.to_json()
    return dict(exchange)


def _lineage_json(lineage: Lineage | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(lineage, Lineage):
        return lineage.to_json()
    return dict(lineage)


def scenario_anchor(scenario_id: str) -> str:
    """The HTML id of a scenario's section; safe as an attribute and a fragment."""
    return "rotcert-" + re.sub(r"[^A-Za-z0-9_.-]", "-", scenario_id)


# -------------------------------------------------------------- scenario section


def scenario_html(record: ScenarioRecord, redactor: Redactor | None = None) -> str:
    """One scenario as an HTML section: what it checks, what happened, and why."""
    redactor = redactor or Redactor()
    r = redactor.redact
    outcome = record.outcome if record.outcome in OUTCOMES else "failed"
    colour = OUTCOME_COLOURS[outcome]

    parts = [
        f'<section class="rotcert-scenario" id="{scenario_anchor(record.scenario_id)}"'
        f' data-outcome="{outcome}" style="border-left:4px solid {colour};'
        'padding:4px 12px;margin:12px 0">',
        f"<h3>{escape(r(record.scenario_id))} — {escape(r(record.title))} "
        f'<span class="rotcert-outcome" style="color:{colour}">'
        f"{outcome.upper()}</span></h3>",
        f'<p class="rotcert-requirement"><b>Requirement:</b> '
        f"{escape(r(record.requirement))}</p>",
        f'<p class="rotcert-meta">{_meta(record, r)}</p>',
    ]

    if record.reason:
        parts.append(
            f'<div class="rotcert-reason"><b>{REASON_HEADINGS[outcome]}:</b>'
            f'<pre style="{PRE_STYLE}">{escape(r(record.reason))}</pre></div>'
        )

    if record.steps:
        items = "".join(f"<li>{escape(r(step))}</li>" for step in record.steps)
        parts.append(f'<h4>Steps</h4><ol class="rotcert-steps">{items}</ol>')

    lineages = [_lineage_json(lin) for lin in record.lineages]
    if lineages:
        parts.append("<h4>Lineage</h4>")
        for data in lineages:
            lineage = Lineage.from_json(redactor.redact_json(data))
            parts.append(
                '<div class="rotcert-lineage-figure" style="overflow-x:auto">'
                + lineage_svg(lineage, end=record.simulated_s or None)
                + "</div>"
            )

    exchanges = [_exchange_json(e) for e in record.transcript]
    if exchanges:
        parts.append(f"<h4>HTTP transcript ({len(exchanges)} exchanges)</h4>")
        parts.append('<div class="rotcert-transcript">')
        parts.extend(
            _exchange_html(number, exchange, redactor)
            for number, exchange in enumerate(exchanges, 1)
        )
        parts.append("</div>")

    parts.append("</section>")
    return "\n".join(parts)


def _meta(record: ScenarioRecord, r: Callable[[str], str]) -> str:
    profiles = ", ".join(record.profiles) or "none"
    facts = [
        f"<b>Profiles:</b> {escape(r(profiles))}",
        f"took {record.duration_s:.2f} s",
    ]
    if record.simulated_s:
        facts.append(f"simulated {escape(format_duration(record.simulated_s))}")
    return " · ".join(facts)


def _exchange_html(number: int, data: Mapping[str, Any], redactor: Redactor) -> str:
    r = redactor.redact
    method = r(str(data.get("method", "")))
    url = r(str(data.get("url", "")))
    status = data.get("status")
    answered = "no answer" if status is None else str(status)
    elapsed = data.get("elapsed_ms") or 0.0
    step = r(str(data.get("step") or ""))
    diagnosis = data.get("diagnosis")

    summary = f"{number}. "
    if step:
        summary += f"{escape(step)} — "
    summary += (
        f"<code>{escape(method)} {escape(url)}</code> → <b>{escape(answered)}</b>"
        f" ({float(elapsed):.1f} ms)"
    )
    if diagnosis:
        summary += f' <span style="color:#c53030">{escape(r(str(diagnosis)))}</span>'

    request = _message(
        f"{method} {url}",
        redactor.redact_headers(data.get("request_headers") or {}),
        redactor.redact_body(str(data.get("request_body") or ""), indent=2),
    )
    response = _message(
        answered,
        redactor.redact_headers(data.get("response_headers") or {}),
        redactor.redact_body(str(data.get("response_body") or ""), indent=2),
    )
    return (
        f'<details class="rotcert-exchange"><summary>{summary}</summary>'
        f'<div style="margin-left:16px"><b>Request</b>'
        f'<pre style="{PRE_STYLE}">{escape(request)}</pre>'
        f'<b>Response</b><pre style="{PRE_STYLE}">{escape(response)}</pre></div>'
        "</details>"
    )


def _message(first_line: str, headers: Mapping[str, str], body: str) -> str:
    lines = [first_line, *(f"{name}: {value}" for name, value in headers.items())]
    if body:
        lines += ["", body]
    return "\n".join(lines)


# ------------------------------------------------------------------- verdicts


def verdict_html(
    verdicts: Iterable[Mapping[str, Any]],
    target: Mapping[str, Any] | None = None,
    *,
    policy: Mapping[str, Any] | None = None,
    redactor: Redactor | None = None,
) -> str:
    """The banner at the top of the report: a verdict per profile.

    Each verdict is a mapping as profiles.Verdict.to_json() makes it: "profile",
    "description", "certified" (bool), "incomplete" (bool: required scenarios
    could not run), "passed", "failed" and "not_run" (lists of {"id", "reason"}
    or bare ids; "failing" and "scenario_id" are read too). The target and its
    declared policy (target["declared_policy"] or target["policy"] unless given)
    are summarised below it, secrets fingerprinted.
    """
    redactor = redactor or Redactor()
    shown = redactor.redact_json(dict(target or {}))
    for name in ("declared_policy", "policy"):
        found = shown.pop(name, None)
        policy = policy if policy is not None else found
    policy = redactor.redact_json(dict(policy)) if policy else None

    rows = [_verdict_row(v, redactor) for v in verdicts]
    parts = [
        '<section class="rotcert-verdicts" style="border:2px solid #2d3748;'
        'padding:8px 16px;margin:12px 0">',
        "<h2>rotcert certification</h2>",
    ]
    if rows:
        head = "".join(
            f'<th style="text-align:left">{name}</th>'
            for name in ("profile", "verdict", "why")
        )
        parts.append(
            '<table class="rotcert-verdict-table" style="border-collapse:collapse">'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )
    else:
        parts.append("<p>No profile was judged: no rotcert scenario ran.</p>")

    broken = shown.pop("broken_modes", None)
    if shown or broken:
        parts.append("<h4>Target</h4>" + _broken_modes_html(broken))
    if shown:
        parts.append(_mapping_table(shown))
    if policy:
        parts.append(
            "<details><summary>Declared policy</summary>"
            f"{_mapping_table(policy)}</details>"
        )
    parts.append("</section>")
    return "\n".join(parts)


def _broken_modes_html(broken: Any) -> str:
    """A warning that the mock was broken on purpose (--broken-mode): its verdict
    shows the catalogue catching the bug, not a server's conformance."""
    if not broken:
        return ""
    modes = broken if isinstance(broken, list) else [broken]
    names = ", ".join(f"<code>{escape(str(mode))}</code>" for mode in modes)
    return (
        '<p class="rotcert-broken-modes" style="color:#c53030"><b>Broken mode '
        f"active:</b> {names} — the mock is deliberately wrong, so failures are "
        "expected.</p>"
    )


def _verdict_row(verdict: Mapping[str, Any], redactor: Redactor) -> str:
    r = redactor.redact
    certified = bool(verdict.get("certified"))
    incomplete = bool(verdict.get("incomplete"))
    label = "CERTIFIED" if certified and not incomplete else "NOT CERTIFIED"
    colour = "#2f855a" if label == "CERTIFIED" else "#c53030"
    note = " <small>(incomplete)</small>" if incomplete else ""

    failed = verdict.get("failed", verdict.get("failing")) or []
    not_run = verdict.get("not_run") or []
    items = [_scenario_item(item, "failed", redactor) for item in failed]
    items += [_scenario_item(item, "could not run", redactor) for item in not_run]
    counts = f"{len(verdict.get('passed') or [])} passed, {len(failed)} failed"
    if not_run:
        counts += f", {len(not_run)} could not run"
    why = f"{counts}<ul>{''.join(items)}</ul>" if items else counts

    profile = escape(r(str(verdict.get("profile", "?"))))
    description = verdict.get("description")
    if description:
        profile += Markup("<br><small>") + escape(r(str(description)))
        profile += Markup("</small>")
    cell = 'style="vertical-align:top;padding:4px 12px 4px 0"'
    return (
        f'<tr class="rotcert-verdict" data-certified="{str(label == "CERTIFIED")}">'
        f"<td {cell}><b>{profile}</b></td>"
        f'<td {cell}><b style="color:{colour}">{label}</b>{note}</td>'
        f"<td {cell}>{why}</td></tr>"
    )


def _scenario_item(item: Any, what: str, redactor: Redactor) -> str:
    if isinstance(item, Mapping):
        scenario_id = str(item.get("id", item.get("scenario_id", "?")))
        reason = item.get("reason")
    else:
        scenario_id, reason = str(item), None
    scenario_id = redactor.redact(scenario_id)
    line = (
        f'<li><a href="#{scenario_anchor(scenario_id)}">{escape(scenario_id)}</a> '
        f"{what}"
    )
    if reason:
        first = redactor.redact(str(reason)).strip().splitlines()
        line += f": {escape(first[0] if first else '')}"
    return line + "</li>"


def _mapping_table(mapping: Mapping[str, Any]) -> str:
    rows = []
    for name, value in mapping.items():
        shown = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        rows.append(
            f'<tr><td style="padding-right:12px"><code>{escape(name)}</code></td>'
            f"<td><code>{escape(shown)}</code></td></tr>"
        )
    return f"<table>{''.join(rows)}</table>"


# -------------------------------------------------------------------- summary


def write_summary(
    path: str | os.PathLike[str],
    verdicts: Iterable[Mapping[str, Any]],
    records: Iterable[ScenarioRecord | Mapping[str, Any]],
    target: Mapping[str, Any],
    redactor: Redactor | None = None,
) -> dict[str, Any]:
    """Write the JSON summary for CI (scenarios without transcripts); return it."""
    redactor = redactor or Redactor()
    scenarios = []
    for record in records:
        if not isinstance(record, ScenarioRecord):
            record = ScenarioRecord.from_json(record)
        scenarios.append(redactor.redact_json(record.to_json(transcript=False)))

    summary = {
        "rotcert": _version(),
        "target": redactor.redact_json(dict(target)),
        "verdicts": redactor.redact_json([dict(v) for v in verdicts]),
        "scenarios": scenarios,
    }

    # Written whole or not at all: CI may read it while a rerun writes.
    destination = Path(path)
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        dir=destination.parent, prefix=destination.name, suffix=".tmp"
    )
    try:
        # mkstemp makes the file private (0600); the summary holds only redacted
        # values, so it gets the mode the other reports get from open().
        os.fchmod(handle, 0o666 & ~_umask())
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(summary, stream, indent=2, ensure_ascii=False)
            stream.write("\n")
        os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return summary


def _umask() -> int:
    """The process's umask, which can only be read by setting it."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
