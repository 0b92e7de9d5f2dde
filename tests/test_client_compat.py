"""The client suite end to end through ``rotcert client``: the three real
libraries, the naive and reference clients (in-process, shared clock) and the
example command adapter (real time), run at once; the published compatibility
table must be what they measured."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conformance.adapters.compat import (
    CAUSES,
    COLUMNS,
    comparable,
    render,
    run_suites,
)
from conformance.cli import main
from conformance.client_scenarios.harness import catalogue

ROOT = Path(__file__).parent.parent
PAGE = ROOT / "docs" / "client-compatibility.md"
EXAMPLE = f"{sys.executable} {ROOT / 'fixtures' / 'adapters' / 'example_adapter.py'}"


@pytest.fixture(scope="module")
def suite_out(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("client-suite")


@pytest.fixture(scope="module")
def measured(suite_out: Path) -> dict[str, dict]:
    return run_suites([*COLUMNS, EXAMPLE], suite_out, workers={EXAMPLE: "4"})


def _catches() -> dict[str, list[str]]:
    """Scenario id -> adapters it claims, read from the markers."""
    return {sid: list(meta["catches"]) for sid, (_, meta) in catalogue().items()}


def _failed(summary: dict) -> set[str]:
    return {s["scenario_id"] for s in summary["scenarios"] if s["outcome"] == "failed"}


def test_naive_fails_exactly_the_scenarios_that_claim_it(measured):
    """Issue 4 done-when: the naive client fails every scenario whose catches name
    it, and no other; rotcert client exits 1 for it."""
    claimed = {sid for sid, catches in _catches().items() if "naive" in catches}

    assert _failed(measured["naive"]) == claimed
    assert measured["naive"]["exit_code"] == 1


@pytest.mark.parametrize("adapter", ["reference", EXAMPLE])
def test_correct_clients_are_certified_in_both_forms(measured, adapter):
    """Every scenario can pass: the reference client (in-process, shared clock) and
    the example command adapter (real time) are certified for every profile."""
    summary = measured[adapter]

    assert _failed(summary) == set()
    assert summary["verdicts"] and all(v["certified"] for v in summary["verdicts"])
    assert summary["exit_code"] == 0


def test_published_table_is_what_the_suite_measured(measured):
    """Issue 4 done-when: docs/client-compatibility.md (the README's table) equals
    a fresh measurement, failures included."""
    page = render({name: measured[name] for name in COLUMNS})
    published = PAGE.read_text(encoding="utf-8")
    changed = set(comparable(page).splitlines()) ^ set(
        comparable(published).splitlines()
    )

    assert not changed, sorted(changed)


def test_every_library_failure_has_a_cause_and_no_cause_is_stale(measured):
    """Each failure of a real library carries a one-line cause for its maintainers,
    and every curated cause is for a failure that was measured."""
    failures = {
        (name, sid)
        for name in ("requests-oauthlib", "authlib", "google-auth")
        for sid in _failed(measured[name])
    }

    assert failures - set(CAUSES) == set(), "failures without a cause"
    assert set(CAUSES) - failures == set(), "causes for scenarios that passed"


def test_real_libraries_run_every_scenario(measured):
    """The libraries' verdicts are complete: no scenario skipped or not run."""
    for name in ("requests-oauthlib", "authlib", "google-auth"):
        outcomes = {s["outcome"] for s in measured[name]["scenarios"]}
        assert outcomes <= {"passed", "failed"}, name
        assert len(measured[name]["scenarios"]) == len(_catches())


def test_reports_are_written_with_verdict_and_sections(suite_out, measured):
    """rotcert client writes report.html (verdict banner, one section per scenario,
    the failure's reason) and junit.xml beside summary.json."""
    out = suite_out / "naive"
    html = (out / "report.html").read_text(encoding="utf-8")

    assert "rotcert certification" in html
    assert 'href="#rotcert-C-ROT-01"' in html  # the verdict links the section
    assert "presented refresh token" in html
    assert "STD-RT-C01" in (out / "junit.xml").read_text(encoding="utf-8")


def test_client_command_refuses_an_unknown_adapter(tmp_path, capsys):
    """rotcert client exits 2 with the registered names for an adapter it cannot
    run, before running anything."""
    code = main(["client", "--adapter", "nobody-knows-this", "--out", str(tmp_path)])

    assert code == 2
    assert "neither a registered adapter" in capsys.readouterr().err
    assert not (tmp_path / "summary.json").exists()


def test_client_command_refuses_freeze_for_a_command(tmp_path, capsys):
    """rotcert client exits 2 when asked to move a command adapter's clock."""
    code = main(["client", "--adapter", EXAMPLE, "--time", "freeze"])

    assert code == 2
    assert "cannot be moved" in capsys.readouterr().err
