"""rotcert's pytest plugin (registered through the ``pytest11`` entry point).

Installed, it only adds its options and its marker. Once a ``--rotcert-*`` option
(or ini key, or ROTCERT_* variable) is used, a session object is registered that
builds the target, collects the shipped scenarios when no path was given, keeps a
record per scenario, and turns the results into a verdict per profile in the
terminal, the pytest-html report and a JSON summary. Results travel from
pytest-xdist workers in ``user_properties``, so the verdict is built once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from . import options

if TYPE_CHECKING:
    from .context import ServerScenario
    from .report import ScenarioRecord
    from .session import RotcertSession
    from .target import ServerTarget

__all__ = ["RECORD", "SCENARIOS_DIR"]

RECORD = pytest.StashKey["ScenarioRecord"]()
STATE = pytest.StashKey["RotcertSession"]()
SCENARIOS_DIR = Path(__file__).parent / "scenarios"
MARKER = "rotcert"


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(id, requirement, profiles, catches=()): a rotcert scenario with a "
        "stable id, the requirement it checks and the profiles that require it",
    )
    if not options.is_active(config):
        return
    from .session import RotcertSession

    try:
        session = RotcertSession(config)
    except pytest.UsageError as exc:
        raise pytest.UsageError(options.cli_flags(str(exc))) from None
    config.stash[STATE] = session
    config.pluginmanager.register(session, "rotcert-session")

    # With no path given, run the shipped server catalogue.
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args[:] = [str(SCENARIOS_DIR)]


# ------------------------------------------------------------------ fixtures


def _state(request: pytest.FixtureRequest) -> RotcertSession:
    state = request.config.stash.get(STATE, None)
    if state is None:
        pytest.skip("rotcert is not enabled (use a --rotcert-* option)")
    return state


@pytest.fixture(scope="session")
def rotcert_target(request: pytest.FixtureRequest) -> ServerTarget:
    """The authorization server under test."""
    return _state(request).target()


@pytest.fixture
def rotcert_record(request: pytest.FixtureRequest) -> ScenarioRecord:
    """The running scenario's record (steps, transcript, lineage)."""
    record = request.node.stash.get(RECORD, None)
    if record is None:
        raise pytest.UsageError(f"{request.node.nodeid} has no @pytest.mark.{MARKER}")
    return record


@pytest.fixture
def server_scenario(
    request: pytest.FixtureRequest, rotcert_record: ScenarioRecord
) -> Iterator[ServerScenario]:
    """A server scenario's working context, against the target under test."""
    from .context import ServerScenario

    state = _state(request)
    target, grants, clock = state.target(), state.grants(), state.time()
    http = target.http(state.redactor)
    scenario = ServerScenario(
        target,
        grants,
        clock,
        rotcert_record,
        http,
        state.race_threads,
        state.race_rounds,
    )
    rotcert_record.transcript = http.transcript
    clock.begin()
    try:
        yield scenario
    finally:
        clock.end()
