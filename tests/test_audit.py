"""rotcert audit: the client rules over recorded events, the verdict, the reports
and the exit codes."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conformance.audit import (
    AuditError,
    audit_events,
    judge_events,
    load_events,
    overlapping,
)
from conformance.cli import main

RECORDINGS = Path(__file__).parent.parent / "fixtures" / "recordings"


def _failed(path: Path) -> set[str]:
    records = audit_events(load_events(path))
    return {r.scenario_id for r in records if r.outcome == "failed"}


@pytest.mark.parametrize(
    ("recording", "failed"),
    [
        ("clean", set()),
        ("naive-reuse", {"A-REUSE-01"}),
        ("parallel-refresh", {"A-PAR-01"}),
        ("refresh-storm", {"A-STORM-01"}),
        ("scope-broadening", {"A-SCOPE-01"}),
        ("refresh-token-at-resource", {"A-RS-01"}),
        ("two-auth-methods", {"A-AUTH-01"}),
    ],
)
def test_each_recording_breaks_exactly_its_rule(recording, failed):
    """STD-RT-C01/C03/C05/C08/C13/C14: each recorded flaw is found by its rule and
    by no other; a correct client's recording breaks none."""
    assert _failed(RECORDINGS / f"{recording}.jsonl") == failed


def test_clean_recording_is_certified_with_all_reports(tmp_path, capsys):
    """rotcert audit exits 0 for a clean recording and writes report.html,
    summary.json and junit.xml with the recorded-client verdict."""
    code = main(["audit", str(RECORDINGS / "clean.jsonl"), "--out", str(tmp_path)])

    assert code == 0
    assert "rotcert recorded-client: CERTIFIED" in capsys.readouterr().out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["verdicts"][0]["profile"] == "recorded-client"
    assert summary["verdicts"][0]["certified"] is True
    assert "rotcert certification" in (tmp_path / "report.html").read_text()
    suite = ET.parse(tmp_path / "junit.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "0"


def test_broken_recording_is_not_certified_and_says_why(tmp_path, capsys):
    """rotcert audit exits 1 and prints the finding for a client that reused a
    consumed refresh token; the report shows the token by fingerprint only."""
    code = main(
        ["audit", str(RECORDINGS / "naive-reuse.jsonl"), "--out", str(tmp_path)]
    )
    out = capsys.readouterr().out

    assert code == 1
    assert "A-REUSE-01  FAILED" in out
    assert "had already delivered its successor" in out
    html = (tmp_path / "report.html").read_text()
    assert 'id="rotcert-A-REUSE-01"' in html and "fp:" in html
    suite = ET.parse(tmp_path / "junit.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1"


def test_unreadable_recording_is_a_usage_error(tmp_path, capsys):
    """rotcert audit exits 2 and names the line of a recording that is not JSON
    Lines."""
    bad = tmp_path / "events.jsonl"
    bad.write_text('{"endpoint": "token"}\nnot json\n')

    assert main(["audit", str(bad), "--out", str(tmp_path / "out")]) == 2
    assert "line 2 is not JSON" in capsys.readouterr().err
    with pytest.raises(AuditError, match="holds no events"):
        load_events(_write(tmp_path / "empty.jsonl", ""))


FIRST = json.dumps({"seq": 1, "time": 1.0, "endpoint": "authorize", "status": 302})
# A refresh whose family_id is replaced per case, on line 2 of a recording.
REFRESH = {"seq": 2, "time": 2.0, "endpoint": "token", "grant_type": "refresh_token"}

# Recordings that cannot be audited: line 2, and the words the error must use.
BAD_LINES = {
    "family-id-list": (
        json.dumps({**REFRESH, "presented_fp": "fp:a", "family_id": [1]}),
        "line 2: field 'family_id' is a JSON array; it must be a string",
    ),
    "fingerprint-object": (
        json.dumps({**REFRESH, "presented_fp": {"fp": 1}}),
        "line 2: field 'presented_fp' is a JSON object; it must be a string",
    ),
    "reason-list": (
        json.dumps({**REFRESH, "presented_fp": "fp:a", "reason": ["expired"]}),
        "line 2: field 'reason' is a JSON array; it must be a string",
    ),
    "time-text": (
        json.dumps({**REFRESH, "time": "soon"}),
        "line 2: field 'time' is a JSON string; it must be a time in seconds",
    ),
    "seq-text": (
        json.dumps({**REFRESH, "seq": "two"}),
        "line 2: field 'seq' is a JSON string; it must be an integer",
    ),
    "generation-text": (
        json.dumps({**REFRESH, "presented_fp": "fp:a", "generation": "one"}),
        "line 2: field 'generation' is a JSON string; it must be an integer",
    ),
    "nested": ("[" * 20_000 + "]" * 20_000, "line 2 is JSON nested too deeply"),
    "overlong": (
        json.dumps({**REFRESH, "note": "x" * 100_000}),
        "line 2 is longer than 65536 bytes",
    ),
    "not-utf8": ('{"endpoint": "\xff"}', "line 2 is not UTF-8 text"),
}


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_malformed_event_is_a_usage_error_naming_its_line(tmp_path, capsys, case):
    """rotcert audit exits 2, naming the line and the field, for an event with a
    field of the wrong JSON type (family_id [1] and the like), JSON nested
    20000 deep, a line over 64 KiB or bytes that are not UTF-8; no traceback."""
    line, message = BAD_LINES[case]
    path = tmp_path / "events.jsonl"
    raw = line.encode("latin-1") if case == "not-utf8" else line.encode()
    path.write_bytes(FIRST.encode() + b"\n" + raw + b"\n")

    code = main(["audit", str(path), "--out", str(tmp_path / "out")])

    assert code == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_recording_that_is_not_a_regular_file_is_a_usage_error(tmp_path, capsys):
    """rotcert audit /dev/zero exits 2 at once, saying it needs a regular file,
    instead of reading without end."""
    code = main(["audit", "/dev/zero", "--out", str(tmp_path / "out")])

    assert code == 2
    assert "'/dev/zero' is not a regular file" in capsys.readouterr().err


def test_recording_without_refreshes_is_incomplete(tmp_path):
    """A recording with nothing to judge is not certified: its rules are marked not
    applicable and the verdict is incomplete (exit 1)."""
    path = _write(
        tmp_path / "events.jsonl",
        json.dumps({"endpoint": "authorize", "status": 302, "time": 1.0}) + "\n",
    )

    assert main(["audit", str(path), "--out", str(tmp_path / "out")]) == 1
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["verdicts"][0]["incomplete"] is True


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _refresh(seq, time, presented, status=200, issued=None, **more):
    return {
        "seq": seq,
        "time": time,
        "endpoint": "token",
        "grant_type": "refresh_token",
        "presented_fp": presented,
        "status": status,
        "issued_fp": issued,
        **more,
    }


def _judge(events):
    def concurrent(a, b):
        return abs(b["time"] - a["time"]) <= 1.0

    findings, _ = judge_events(events, concurrent, lambda e: f"#{e['seq']}")
    return {key: len(found) for key, found in findings.items() if found}


def test_retry_after_a_lost_answer_is_allowed():
    """STD-RT-C15: presenting a token again after its answer was lost (5xx) is a
    permitted retry, not reuse."""
    events = [
        _refresh(1, 0.0, "fp:a", status=502, issued="fp:b", fault="drop"),
        _refresh(2, 5.0, "fp:a", issued="fp:c"),
        _refresh(3, 9.0, "fp:c", issued="fp:d"),
    ]
    assert _judge(events) == {}


def test_a_multi_use_token_may_be_presented_again():
    """STD-RT-C02: a token the server kept (no rotation) may be presented again,
    even by parallel requests."""
    events = [
        _refresh(1, 0.0, "fp:a", issued="fp:a"),
        _refresh(2, 0.1, "fp:a"),
        _refresh(3, 7.0, "fp:a", issued="fp:a"),
    ]
    assert _judge(events) == {}


def test_reuse_parallel_and_storm_are_told_apart():
    """STD-RT-C01/C13/C14: a late reuse, a burst with one winner, and a burst of
    refusals are three different findings."""
    reuse = [_refresh(1, 0.0, "fp:a", issued="fp:b"), _refresh(2, 30.0, "fp:a")]
    parallel = [
        _refresh(1, 0.0, "fp:a", status=400, error="invalid_grant"),
        _refresh(2, 0.1, "fp:a", issued="fp:b"),
    ]
    storm = [
        _refresh(i, i * 0.05, "fp:a", status=400, error="invalid_grant")
        for i in range(1, 6)
    ]

    assert _judge(reuse) == {"reuse": 1}
    assert _judge(parallel) == {"parallel": 1}
    assert _judge(storm) == {"storm": 1}


def test_a_quick_sequential_replay_is_reuse_not_a_race():
    """STD-RT-C01: a consumed token presented 0.03 s after its refresh was
    answered is reuse; only requests that overlapped in time are parallel."""
    sequential = [
        _refresh(1, 10.02, "fp:a", issued="fp:b", started=10.0),
        _refresh(2, 10.06, "fp:a", status=400, error="invalid_grant", started=10.05),
    ]
    overlapped = [
        _refresh(1, 10.02, "fp:a", issued="fp:b", started=10.0),
        _refresh(2, 10.03, "fp:a", status=400, error="invalid_grant", started=10.01),
    ]

    judge = lambda events: {  # noqa: E731
        key: len(found)
        for key, found in judge_events(events, overlapping, str)[0].items()
        if found
    }
    assert judge(sequential) == {"reuse": 1}
    assert judge(overlapped) == {"parallel": 1}
