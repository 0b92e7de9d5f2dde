"""The client scenario catalogue: its markers, its coverage of the client bug
classes, and its power — every flawed reference client fails each scenario that
claims to catch it, with a message naming the requirement."""

from __future__ import annotations

import json

import pytest

from conformance.adapters import InProcessAdapter, PythonAdapter, names, resolve
from conformance.client_scenarios.harness import MockHarness, catalogue, run_scenario
from conformance.profiles import CLIENT_PROFILES
from mock_server import load_integration
from mock_server.policy import DATABRICKS_EXAMPLE

CATALOGUE = catalogue()

# Each client-side root-cause class of bug-classes.md, and the scenario for it.
BUG_CLASSES = {
    "C1 keeps the old refresh token after rotation": "C-ROT-01",
    "C2 rotated refresh token not persisted across a restart": "C-ROT-01",
    "C3 drops the refresh token when the response omits it": "C-OMIT-01",
    "C4 concurrent refresh in one process": "C-PAR-01",
    "C4 concurrent refresh across processes": "C-XPROC-01",
    "C5 invalid_grant retried in a loop": "C-TERM-01",
    "C5 session lifetime ends without clean re-authentication": "C-LIFE-01",
    "C6 expiry anchored at load time": "C-EXP-01",
    "C6 no refresh on 401": "C-401-01",
    "C7 lost response after rotation": "C-LOST-01",
}


def test_every_scenario_has_a_stable_id_requirement_and_client_profiles():
    """Catalogue: each scenario has a C-* id, STD-RT-C* requirements, known client
    profiles, a docstring, and catches only registered adapters."""
    assert len(CATALOGUE) >= 15
    for scenario_id, (function, meta) in CATALOGUE.items():
        assert scenario_id.startswith("C-")
        requirements = [r.strip() for r in meta["requirement"].split(",")]
        assert all(r.startswith("STD-RT-C") for r in requirements), scenario_id
        assert meta["profiles"] and set(meta["profiles"]) <= set(CLIENT_PROFILES)
        assert set(meta["catches"]) <= set(names()), scenario_id
        assert (function.__doc__ or "").strip(), scenario_id


def test_every_client_bug_class_has_a_scenario():
    """Issue 4 done-when: each client bug class of bug-classes.md has a scenario."""
    missing = {c: s for c, s in BUG_CLASSES.items() if s not in CATALOGUE}
    assert not missing


def test_every_flawed_client_is_claimed_by_a_scenario():
    """Catalogue: no flawed reference client exists that no scenario catches."""
    claimed = {name for _, meta in CATALOGUE.values() for name in meta["catches"]}
    flawed = {name for name in names() if name.startswith("flawed-")}
    assert flawed <= claimed


@pytest.fixture(scope="module")
def mock():
    harness = MockHarness.start(load_integration(DATABRICKS_EXAMPLE), "basic")
    yield harness
    harness.stop()


CLAIMS = sorted(
    (scenario_id, name)
    for scenario_id, (_, meta) in CATALOGUE.items()
    for name in meta["catches"]
    if name.startswith("flawed-")
)


@pytest.mark.parametrize(("scenario_id", "adapter"), CLAIMS)
def test_flawed_client_fails_the_scenario_that_claims_it(
    mock, tmp_path, scenario_id, adapter
):
    """Suite power: the flawed client fails the scenario, and the failure names
    one of the scenario's STD-RT-C requirements."""
    function, meta = CATALOGUE[scenario_id]
    result = run_scenario(function, mock, resolve(adapter), tmp_path / "state")

    assert result.outcome == "failed", result.record.steps
    assert result.reason is not None and result.reason.startswith("STD-RT-C")


def test_a_failed_scenario_record_shows_steps_transcript_and_lineage(mock, tmp_path):
    """Report material: a failing scenario's record carries its steps, the server's
    events as a transcript, and the family's lineage — with no raw token."""
    function, _ = CATALOGUE["C-ROT-01"]
    result = run_scenario(function, mock, resolve("naive"), tmp_path / "state")
    record = result.record

    assert result.outcome == "failed"
    assert any("server saw: refresh" in step for step in record.steps)
    assert record.transcript and record.lineages
    kinds = {e["kind"] for e in record.lineages[0]["events"]}
    assert {"issued", "consumed", "rejected"} <= kinds
    text = repr(record.to_json())
    assert mock.client_secret not in text
    assert "fp:" in text


class StateDirProbe(PythonAdapter):
    """Seeds by writing into the state directory without creating it, and notes
    what it found there first."""

    found: list[list[str] | None] = []

    def seed(self, token_response):
        state = self.env.state_dir
        self.found.append(
            sorted(p.name for p in state.iterdir()) if state.is_dir() else None
        )
        (state / "token.json").write_text(json.dumps(token_response))
        return {}

    def call(self):
        return {}


def test_state_directory_exists_and_is_empty_before_the_first_action(mock, tmp_path):
    """Protocol (ROTCERT_STATE_DIR): the suite creates the client's state
    directory, empty, before the adapter's first action; the adapter need not."""
    StateDirProbe.found = []
    function, _ = CATALOGUE["C-ROT-01"]
    adapter = InProcessAdapter(StateDirProbe, "state-dir-probe")

    result = run_scenario(function, mock, adapter, tmp_path / "fresh" / "state")

    assert StateDirProbe.found[:1] == [[]], result.record.steps
    assert "seed failed" not in (result.reason or "")


class BrokenSeed(PythonAdapter):
    """A seed that fails whatever the token response holds."""

    def seed(self, token_response):
        raise RuntimeError("the keyring is locked")


def test_a_broken_seed_is_a_set_up_failure_not_the_scenarios_requirement(
    mock, tmp_path
):
    """C-UNK-01 (STD-RT-C09, C10): when the seed fails for a plain token response
    too, the failure says the set-up's seed failed and why, and blames no
    requirement on the response's unknown members."""
    function, _ = CATALOGUE["C-UNK-01"]
    adapter = InProcessAdapter(BrokenSeed, "broken-seed")

    result = run_scenario(function, mock, adapter, tmp_path / "state")

    assert result.outcome == "failed"
    assert result.reason is not None
    assert result.reason.startswith("set-up: the seed action"), result.reason
    assert "the keyring is locked" in result.reason
    assert "STD-RT-C09" not in result.reason
