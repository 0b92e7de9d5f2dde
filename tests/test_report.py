"""Report pieces: scenario sections, the verdict banner and the CI summary."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest

import mock_server
from conformance.http import Exchange, HttpClient, WSGIAdapter
from conformance.lineage import Lineage
from conformance.redact import Redactor
from conformance.report import (
    ScenarioRecord,
    scenario_anchor,
    scenario_html,
    verdict_html,
    write_summary,
)
from mock_server.tokens import fingerprint

HOSTILE_SCRIPT = "<script>alert(1)</script>"
HOSTILE_ATTR = '"><img src=x onerror=alert(2)>'
HOSTILE_URL = "javascript:alert(3)"


class Page(HTMLParser):
    """The elements, attributes and text of an HTML fragment."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def names(self) -> list[str]:
        return [tag for tag, _ in self.tags]

    def all_text(self) -> str:
        return "".join(self.text)


def assert_nothing_injected(page: Page) -> None:
    assert "script" not in page.names()
    assert "img" not in page.names()
    for tag, attrs in page.tags:
        assert not [name for name in attrs if name.startswith("on")], tag
        for name in ("href", "src", "xlink:href"):
            assert not (attrs.get(name) or "").lower().startswith("javascript"), tag


def exchange(**overrides) -> Exchange:
    values = dict(
        step="refresh with the newest token",
        method="POST",
        url="http://as.test/token",
        request_headers={"Content-Type": "application/x-www-form-urlencoded"},
        request_body="grant_type=refresh_token&refresh_token=fp:0123456789",
        status=400,
        response_headers={"Content-Type": "application/json"},
        response_body='{"error": "invalid_grant"}',
        elapsed_ms=3.2,
        diagnosis=None,
    )
    values.update(overrides)
    return Exchange(**values)


def record(**overrides) -> ScenarioRecord:
    lineage = Lineage("fam-1")
    lineage.issued("refresh-token-zero", 0, 0)
    lineage.consumed("refresh-token-zero", 60)
    lineage.issued("refresh-token-one", 1, 60)
    values = dict(
        scenario_id="S-REUSE-02",
        title="A consumed refresh token is rejected",
        requirement="STD-RT-03: reuse of a rotated token is rejected",
        profiles=["rfc9700", "oauth21"],
        outcome="failed",
        reason="STD-RT-03: expected the reuse to be rejected; it succeeded",
        steps=["mint a fresh family", "rotate", "present generation 0 again"],
        transcript=[exchange(), exchange(status=200, step="reuse")],
        lineages=[lineage],
        duration_s=0.42,
        simulated_s=60.0,
    )
    values.update(overrides)
    return ScenarioRecord(**values)


def verdicts() -> list[dict]:
    return [
        {
            "profile": "rfc9700",
            "description": "RFC 9700 §4.14.2",
            "status": "CERTIFIED",
            "certified": True,
            "incomplete": False,
            "passed": ["S-ROT-01", "S-REUSE-02"],
            "failed": [],
            "not_run": [],
        },
        {
            "profile": "oauth21",
            "description": "OAuth 2.1",
            "status": "NOT CERTIFIED",
            "certified": False,
            "incomplete": False,
            "passed": ["S-ROT-01"],
            "failed": [{"id": "S-REUSE-02", "reason": "reuse accepted\nmore detail"}],
            "not_run": [],
        },
        {
            "profile": "databricks",
            "description": "declared policy",
            "status": "NOT CERTIFIED (incomplete)",
            "certified": False,
            "incomplete": True,
            "passed": [],
            "failed": [],
            "not_run": [{"id": "S-LIFE-03", "reason": "cannot check: no budget"}],
        },
    ]


# ----------------------------------------------------------------------- record


def test_record_json_round_trip():
    """A record survives to_json/from_json, with Exchange and Lineage serialised."""
    original = record(catches=["reuse_accepted"])

    data = json.loads(json.dumps(original.to_json()))
    again = ScenarioRecord.from_json(data)

    assert again.to_json() == data
    assert data["transcript"][0]["status"] == 400
    assert data["lineages"][0]["family"] == "fam-1"
    assert data["catches"] == ["reuse_accepted"]
    assert "transcript" not in original.to_json(transcript=False)


# --------------------------------------------------------------- scenario html


def test_scenario_html_shows_everything_the_reader_needs():
    """Id, title, requirement, outcome, reason, numbered steps, lineage, transcript."""
    html = scenario_html(record())

    page = Page(html)
    text = page.all_text()
    section = page.tags[0]
    assert section == (
        "section",
        {
            "class": "rotcert-scenario",
            "id": scenario_anchor("S-REUSE-02"),
            "data-outcome": "failed",
            "style": section[1]["style"],
        },
    )
    for expected in (
        "S-REUSE-02",
        "A consumed refresh token is rejected",
        "STD-RT-03: reuse of a rotated token is rejected",
        "FAILED",
        "Why it failed",
        "expected the reuse to be rejected; it succeeded",
        "POST http://as.test/token",
        '"error": "invalid_grant"',
        "rfc9700, oauth21",
        "simulated 1 min",
    ):
        assert expected in text
    assert page.names().count("li") == 3 and "ol" in page.names()
    assert page.names().count("svg") == 1
    assert page.names().count("details") == 2


def test_scenario_html_escapes_hostile_server_values():
    """Error descriptions, header values and URLs from the target stay text."""
    hostile = exchange(
        step=f"step {HOSTILE_SCRIPT}",
        url=HOSTILE_URL,
        response_headers={"Location": HOSTILE_URL, "X-Quote": HOSTILE_ATTR},
        response_body=json.dumps({"error_description": HOSTILE_SCRIPT}),
        diagnosis=f"answered text/html: '{HOSTILE_SCRIPT}'",
    )
    lineage = Lineage(HOSTILE_ATTR)
    lineage.issued("refresh-token-zero", 0, 0)
    lineage.rejected("refresh-token-zero", 1, HOSTILE_SCRIPT)
    bad = record(
        title=HOSTILE_ATTR,
        reason=f"the server said {HOSTILE_SCRIPT}",
        steps=[f"</li></ol>{HOSTILE_SCRIPT}"],
        transcript=[hostile],
        lineages=[lineage],
        profiles=[HOSTILE_ATTR],
    )

    html = scenario_html(bad)

    page = Page(html)
    assert_nothing_injected(page)
    assert HOSTILE_SCRIPT in page.all_text()
    assert HOSTILE_ATTR in page.all_text()
    assert HOSTILE_URL in page.all_text()
    assert page.names().count("a") == 0


def test_scenario_html_redacts_secrets_it_is_told_about():
    """A secret that slipped into a step or a reason is fingerprinted on the page."""
    redactor = Redactor(["leaked-refresh-token"])
    careless = record(
        steps=["present leaked-refresh-token again"],
        reason="refresh_token=leaked-refresh-token was accepted",
    )

    html = scenario_html(careless, redactor)

    assert "leaked-refresh-token" not in html
    assert fingerprint("leaked-refresh-token") in html


def test_escaped_json_bodies_are_redacted_as_decoded():
    """Issue 3 (Verdict and reports): a body that spells a member name or a
    registered token with JSON escapes shows neither token once pretty-printed."""
    redactor = Redactor(["Registered-refresh-token-1"])
    escaped_name = '{"refresh\\u005ftoken": "unregistered-refresh-token-2"}'
    escaped_value = '{"error_description": "bad \\u0052egistered-refresh-token-1"}'
    number = '{"acc\\u0065ss_token": 987654321987654}'
    scenario = record(
        transcript=[
            exchange(response_body=escaped_name),
            exchange(response_body=escaped_value),
            exchange(request_body=number, response_body=number),
        ]
    )

    html = scenario_html(scenario, redactor)

    text = Page(html).all_text()
    for token in (
        "unregistered-refresh-token-2",
        "Registered-refresh-token-1",
        "987654321987654",
    ):
        assert token not in text
    assert fingerprint("unregistered-refresh-token-2") in text
    assert f"bad {fingerprint('Registered-refresh-token-1')}" in text


def test_deeply_nested_json_body_is_shown_as_text():
    """Issue 3 (Reaching a server): a body nested past what json can read is
    shown redacted as text; the report is still written."""
    nested = "[" * 100_000 + "]" * 100_000
    scenario = record(transcript=[exchange(response_body=nested)])

    html = scenario_html(scenario)

    assert "[[[[" in Page(html).all_text()


def test_unknown_outcome_is_shown_as_failed():
    """An outcome outside passed/failed/skipped cannot pass silently."""
    page = Page(scenario_html(record(outcome="weird")))

    assert page.tags[0][1]["data-outcome"] == "failed"


# -------------------------------------------------------------------- verdicts


def test_verdict_banner_per_profile():
    """Each profile shows CERTIFIED / NOT CERTIFIED, incomplete ones say so."""
    page = Page(verdict_html(verdicts(), {"name": "mock"}))

    rows = [attrs for tag, attrs in page.tags if tag == "tr" and attrs]
    assert [r["data-certified"] for r in rows] == ["True", "False", "False"]
    text = page.all_text()
    assert text.count("NOT CERTIFIED") == 2 and "(incomplete)" in text
    assert "S-REUSE-02 failed: reuse accepted" in text
    assert "more detail" not in text
    assert "S-LIFE-03 could not run: cannot check: no budget" in text
    links = [attrs["href"] for tag, attrs in page.tags if tag == "a"]
    assert links == [
        "#" + scenario_anchor("S-REUSE-02"),
        "#" + scenario_anchor("S-LIFE-03"),
    ]


def test_verdict_banner_summarises_target_and_policy_without_secrets():
    """The target and its declared policy are shown, credentials fingerprinted."""
    target = {
        "name": "staging AS",
        "token_endpoint": "https://as.test/token",
        "client_id": "client-1",
        "client_secret": "target-client-secret",
        "declared_policy": {"refresh_token_ttl_in_minutes": 60, "grace": HOSTILE_ATTR},
    }

    html = verdict_html(verdicts(), target)

    page = Page(html)
    assert_nothing_injected(page)
    assert "target-client-secret" not in html
    text = page.all_text()
    assert fingerprint("target-client-secret") in text
    assert "https://as.test/token" in text and "refresh_token_ttl_in_minutes" in text
    assert "Declared policy" in text


def test_verdict_banner_shows_an_active_broken_mode_in_the_target_section():
    """DESIGN (mutation, rotcert server --broken-mode): the Target section says
    which broken modes the mock ran with, escaped, so a NOT CERTIFIED verdict
    of a deliberately broken mock is not read as a real server's."""
    target = {"name": "embedded", "broken_modes": ["reuse_accepted", HOSTILE_ATTR]}

    page = Page(verdict_html(verdicts(), target))

    assert_nothing_injected(page)
    text = page.all_text()
    assert "Broken mode active:" in text
    assert text.index("Target") < text.index("reuse_accepted")
    assert HOSTILE_ATTR in text


def test_verdict_banner_escapes_hostile_reasons():
    """A failing reason quoting the server cannot inject markup."""
    hostile = verdicts()
    hostile[1]["failed"] = [{"id": HOSTILE_ATTR, "reason": HOSTILE_SCRIPT}]

    page = Page(verdict_html(hostile))

    assert_nothing_injected(page)
    assert HOSTILE_SCRIPT in page.all_text()


# --------------------------------------------------------------------- summary


def test_write_summary_schema(tmp_path):
    """The CI summary has version, target, verdicts and transcript-free scenarios."""
    path = tmp_path / "out" / "summary.json"

    written = write_summary(
        path, verdicts(), [record(), record(scenario_id="S-ROT-01").to_json()], {}
    )

    data = json.loads(path.read_text())
    assert data == written
    assert set(data) == {"rotcert", "target", "verdicts", "scenarios"}
    assert data["rotcert"] == "0.1.0"
    assert [s["scenario_id"] for s in data["scenarios"]] == ["S-REUSE-02", "S-ROT-01"]
    assert all("transcript" not in s for s in data["scenarios"])
    assert data["scenarios"][0]["lineages"][0]["family"] == "fam-1"
    assert data["verdicts"][1]["failed"][0]["id"] == "S-REUSE-02"
    assert list(tmp_path.joinpath("out").iterdir()) == [path]


def test_summary_gets_the_same_file_mode_as_the_other_reports(tmp_path):
    """Reports and CI: summary.json holds only redacted values, so it is written
    with the mode open() gives report.html and junit.xml (0644 under umask 022),
    not mkstemp's private 0600."""
    path = tmp_path / "summary.json"
    other = tmp_path / "report.html"

    write_summary(path, verdicts(), [record()], {})
    other.write_text("<html></html>")

    assert path.stat().st_mode & 0o777 == other.stat().st_mode & 0o777


# ------------------------------------------------------------------ end to end


@pytest.fixture
def flow():
    """A real mint / rotate / reuse against the mock, through the suite's client."""
    mock = mock_server.MockServer()
    main = mock.credentials["main"]
    assert main.client_secret is not None
    redactor = Redactor()
    redactor.add(main.client_secret, "client_secret")
    adapter = WSGIAdapter(mock_server.create_app(mock))
    lineage = Lineage("fam-e2e")

    with HttpClient(redactor, transport=adapter) as http:
        minted = http.post_json("http://mock.test/admin/grants", {}).json_object()
        lineage.issued(minted["refresh_token"], 0, 0)
        form = {"grant_type": "refresh_token", "refresh_token": minted["refresh_token"]}
        auth = (main.client_id, main.client_secret)
        rotated = http.post_form("http://mock.test/token", form, auth=auth).json
        lineage.consumed(minted["refresh_token"], 5)
        lineage.issued(rotated["refresh_token"], 1, 5)
        http.post_form("http://mock.test/token", form, auth=auth)
        lineage.rejected(minted["refresh_token"], 10, "invalid_grant")

    secrets = [
        main.client_secret,
        minted["refresh_token"],
        minted["access_token"],
        rotated["refresh_token"],
        rotated["access_token"],
    ]
    scenario = record(
        transcript=http.transcript,
        lineages=[lineage],
        reason=f"reuse of {minted['refresh_token']} was rejected late",
    )
    return scenario, redactor, secrets, main


def test_no_secret_survives_in_html_or_summary(flow, tmp_path):
    """Tokens and the client secret appear nowhere: page, banner or summary."""
    scenario, redactor, secrets, main = flow
    target = {"client_id": main.client_id, "client_secret": main.client_secret}

    html = scenario_html(scenario, redactor) + verdict_html(verdicts(), target)
    write_summary(tmp_path / "s.json", verdicts(), [scenario], target, redactor)
    summary = (tmp_path / "s.json").read_text()
    transcript = json.dumps(scenario.to_json()["transcript"])

    for secret in secrets:
        assert secret not in html
        assert secret not in summary
        assert secret not in transcript
    assert fingerprint(secrets[1]) in html
