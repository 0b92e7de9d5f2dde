"""The suite's own power, proven by mutation: every broken mode of the mock is
caught by exactly the scenarios that claim to check it, and the clean mock is
certified under every policy shape the catalogue knows."""

from __future__ import annotations

import json
import re

import pytest
import werkzeug.test  # noqa: F401

# Imported here, once, so that pytester's in-process runs (which drop modules
# first imported inside them) share one copy of requests and werkzeug.
import conformance.session  # noqa: F401
from conformance.plugin import SCENARIOS_DIR
from mock_server.broken import BROKEN_MODES

README = SCENARIOS_DIR.parent.parent / "README.md"

pytest_plugins = ["pytester"]

DATABRICKS = {
    "access_token_ttl_in_minutes": 60,
    "refresh_token_ttl_in_minutes": 1440,
    "enable_single_use_refresh_tokens": True,
    "absolute_session_lifetime_in_minutes": 43200,
}
POLICIES = {
    "databricks-example": DATABRICKS,
    "grace-same-successor": {**DATABRICKS, "reuse_grace_period_in_seconds": 30},
    "grace-new-pair": {
        **DATABRICKS,
        "reuse_grace_period_in_seconds": 30,
        "grace_response": "new_pair",
    },
}


def run_catalogue(pytester: pytest.Pytester, policy: dict, *extra: str) -> dict:
    path = pytester.path / "policy.json"
    path.write_text(json.dumps({"confidential": True, "token_access_policy": policy}))
    summary = pytester.path / "summary.json"
    result = pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        "-p",
        "no:benchmark",
        f"--rotcert-policy={path}",
        f"--rotcert-summary={summary}",
        "--rotcert-race-rounds=5",
        *extra,
        str(SCENARIOS_DIR),
    )
    assert result.ret in (0, 1), result.stdout.str()
    return json.loads(summary.read_text())


def outcomes(summary: dict) -> dict[str, str]:
    return {s["scenario_id"]: s["outcome"] for s in summary["scenarios"]}


def applicable(summary: dict) -> set[str]:
    return {
        s["scenario_id"]
        for s in summary["scenarios"]
        if not (s["outcome"] == "skipped" and s["reason"].startswith("not applicable"))
    }


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_clean_mock_is_certified(pytester: pytest.Pytester, policy: str):
    """DESIGN: the embedded mock obeys its own policy, so every default profile
    is certified and no scenario fails."""
    summary = run_catalogue(pytester, POLICIES[policy])

    assert [v["status"] for v in summary["verdicts"]] == ["CERTIFIED"] * 3
    assert "failed" not in outcomes(summary).values()


def test_multi_use_mock_is_certified_as_multi_use(pytester: pytest.Pytester):
    """STD-RT-31: with single-use off the mock certifies as multi-use and the
    rotation scenarios are left out as not applicable."""
    policy = {**DATABRICKS, "enable_single_use_refresh_tokens": False}
    summary = run_catalogue(pytester, policy)

    verdicts = {v["profile"]: v for v in summary["verdicts"]}
    assert set(verdicts) == {"multi-use", "databricks"}
    assert all(v["certified"] for v in verdicts.values())
    assert outcomes(summary)["S-ROT-01"] == "skipped"


def test_databricks_error_shape_fails_oauth21_only(pytester: pytest.Pytester):
    """STD-RT-21: Databricks' invalid_request shape passes the declared-shape
    checks but not OAuth 2.1's invalid_grant."""
    policy = {**DATABRICKS, "invalid_refresh_token_error": "databricks"}
    summary = run_catalogue(pytester, policy)

    verdicts = {v["profile"]: v["certified"] for v in summary["verdicts"]}
    assert verdicts == {"rfc9700": True, "oauth21": False, "databricks": True}
    failed = {k for k, v in outcomes(summary).items() if v == "failed"}
    assert failed == {"S-ERR-02"}


def requirement_ids(requirement: str) -> set[str]:
    """The ids a marker's requirement names: "STD-RT-34, STD-RT-35" or "K3"."""
    return {part.strip() for part in requirement.split(",")}


@pytest.mark.parametrize("mode", sorted(BROKEN_MODES))
def test_a_failure_cites_a_requirement_its_scenario_names(
    pytester: pytest.Pytester, mode: str
):
    """Catalogue (S-REUSE-01/02, S-FAM-01 and the rest): the requirement id a
    failure opens with is one its scenario's marker, and so the report and the
    README, name for it."""
    summary = run_catalogue(pytester, DATABRICKS, f"--rotcert-broken-mode={mode}")

    for scenario in summary["scenarios"]:
        if scenario["outcome"] != "failed":
            continue
        cited = re.match(r"(STD-RT-\d+|K\d+)\b", scenario["reason"])
        assert cited, scenario["reason"]
        named = requirement_ids(scenario["requirement"])
        assert cited.group(1) in named, (scenario["scenario_id"], scenario["reason"])


def readme_ids(cell: str) -> tuple[set[str], list[tuple[int, int]]]:
    """A README requirement cell ("STD-RT-10, 11", "STD-RT-03..17", "K3") as
    whole ids and STD-RT number ranges."""
    ids, ranges = set(), []
    for part in (p.strip() for p in cell.split(",")):
        number = part.removeprefix("STD-RT-")
        if ".." in number:
            low, high = number.split("..")
            ranges.append((int(low), int(high)))
        elif number.isdigit():
            ids.add(f"STD-RT-{number}")
        else:
            ids.add(part)
    return ids, ranges


def test_readme_catalogue_names_the_requirements_the_markers_name():
    """README (scenario catalogue): each scenario's row names exactly the
    requirement ids its marker names, e.g. S-REUSE-01 STD-RT-34 and 35."""
    rows = re.findall(r"^\| (S-[A-Z0-9-]+) \| ([^|]+?) \|", README.read_text(), re.M)
    markers = {
        found[0]: requirement_ids(found[1])
        for path in SCENARIOS_DIR.glob("test_*.py")
        for found in re.findall(
            r'id="(S-[A-Z0-9-]+)",\s*requirement="([^"]+)"', path.read_text()
        )
    }

    assert {row[0] for row in rows} == set(markers)
    for scenario_id, cell in rows:
        ids, ranges = readme_ids(cell)
        named = markers[scenario_id]
        in_range = {
            i
            for i in named
            if i.startswith("STD-RT-")
            and any(low <= int(i[7:]) <= high for low, high in ranges)
        }
        assert ids <= named and named - ids == in_range, scenario_id


@pytest.mark.parametrize("policy", ["databricks-example", "grace-same-successor"])
@pytest.mark.parametrize("mode", sorted(BROKEN_MODES))
def test_broken_mode_is_caught_by_exactly_its_scenarios(
    pytester: pytest.Pytester, mode: str, policy: str
):
    """DESIGN (mutation): each broken mode fails exactly the applicable
    scenarios whose marker claims it, and no verdict survives it."""
    summary = run_catalogue(pytester, POLICIES[policy], f"--rotcert-broken-mode={mode}")

    failed = {k for k, v in outcomes(summary).items() if v == "failed"}
    claimed = {
        s["scenario_id"] for s in summary["scenarios"] if mode in s.get("catches", [])
    }
    assert failed == claimed & applicable(summary)
    assert failed, f"no scenario caught {mode}"
    assert not all(v["certified"] for v in summary["verdicts"])
