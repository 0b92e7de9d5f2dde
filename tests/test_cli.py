"""``rotcert server`` and the reports it writes (issue 3, "Verdict and reports"):
exit codes, where the report is, the HTML report, JUnit XML, the JSON summary,
and no secret in any of them."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

# hypothesis, werkzeug.test and conformance.session are imported here, once, so
# that pytester's in-process runs (which drop modules first imported inside them)
# share one copy of requests and werkzeug, and do not import hypothesis (loaded by
# its plugin) afresh each run.
import hypothesis  # noqa: F401
import pytest
import werkzeug.test  # noqa: F401

import conformance.session  # noqa: F401
import mock_server.codes
import mock_server.rotation
from conformance import cli
from conformance.plugin import SCENARIOS_DIR
from conformance.report import OUTCOMES
from mock_server import MockServer
from mock_server.broken import BROKEN_MODES
from mock_server.serve import start_in_thread

pytest_plugins = ["pytester"]

SCENARIO_IDS = {
    found
    for path in sorted(SCENARIOS_DIR.glob("test_*.py"))
    for found in re.findall(r'\bid="(S-[A-Z0-9-]+)"', path.read_text())
}
SCENARIO_FUNCTIONS = {
    name
    for path in sorted(SCENARIOS_DIR.glob("test_*.py"))
    for name in re.findall(r"^def (test_\w+)\(", path.read_text(), re.MULTILINE)
}
DEFAULT_PROFILES = ["rfc9700", "oauth21", "databricks"]
REPORTS = ("report.html", "junit.xml", "summary.json")

# What a token_urlsafe(32) value looks like, standing alone.
TOKEN_SHAPE = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])")


def without_rotcert_variables() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ROTCERT_")}


@pytest.fixture(autouse=True)
def no_rotcert_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The caller's ROTCERT_* variables must not leak into the runs under test."""
    for name in [n for n in os.environ if n.startswith("ROTCERT_")]:
        monkeypatch.delenv(name)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------- a certified run, reported


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    out: Path
    secrets: list[str]
    tokens: list[str]


@pytest.fixture(scope="module")
def issuer_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """``rotcert server`` (the console script, in its own process) against a mock
    served from this process, whose every minted token is recorded here."""
    minted: list[str] = []

    def recording(real):
        def new_token() -> str:
            value = real()
            minted.append(value)
            return value

        return new_token

    out = tmp_path_factory.mktemp("issuer") / "reports"
    with pytest.MonkeyPatch.context() as patch:
        for module in (mock_server.rotation, mock_server.codes):
            patch.setattr(module, "new_token", recording(module.new_token))
        server = MockServer()
        url, stop = start_in_thread(server)
        main, second = server.credentials["main"], server.credentials["second"]
        env = without_rotcert_variables()
        env["ROTCERT_CLIENT_SECRET"] = main.client_secret or ""
        env["ROTCERT_SECOND_CLIENT_SECRET"] = second.client_secret or ""
        try:
            done = subprocess.run(
                [
                    rotcert_executable(),
                    "server",
                    f"--issuer={url}",
                    f"--client-id={main.client_id}",
                    f"--second-client-id={second.client_id}",
                    "--race-rounds=3",
                    f"--out={out}",
                ],
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
                check=False,
            )
        finally:
            stop()
    secrets = [c.client_secret for c in server.credentials.values() if c.client_secret]
    for creds in (main, second):
        pair = f"{creds.client_id}:{creds.client_secret}".encode()
        secrets.append(base64.b64encode(pair).decode())
    yield Run(done.returncode, done.stdout, done.stderr, out, secrets, minted)


def rotcert_executable() -> str:
    """The installed console script, next to this interpreter if on no PATH."""
    beside = Path(sys.executable).with_name("rotcert")
    found = shutil.which("rotcert") or (str(beside) if beside.exists() else None)
    assert found, "the rotcert console script is not installed (pip install -e .)"
    return found


class Document(HTMLParser):
    """Every element of an HTML document, in order, with its attributes."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def tags(self, name: str) -> list[dict[str, str | None]]:
        return [attrs for tag, attrs in self.elements if tag == name]

    def index(self, tag: str, **wanted: str) -> int:
        for number, (name, attrs) in enumerate(self.elements):
            if name == tag and all(
                wanted_value in (attrs.get(key) or "").split()
                for key, wanted_value in wanted.items()
            ):
                return number
        raise LookupError(f"no <{tag}> with {wanted}")


def scenario_sections(report: str) -> dict[str, str]:
    """Each test's rotcert HTML, as pytest-html embeds it (JSON in an attribute,
    rendered by its script), keyed by scenario id."""
    blob = next(
        attrs["data-jsonblob"]
        for attrs in Document(report).tags("div")
        if attrs.get("data-jsonblob")
    )
    sections = {}
    for reports in json.loads(blob or "{}")["tests"].values():
        for entry in reports:
            for extra in entry.get("extras", []):
                found = re.search(r'id="rotcert-(S-[A-Z0-9-]+)"', extra["content"])
                if extra.get("format_type") == "html" and found:
                    sections[found.group(1)] = extra["content"]
    return sections


def test_certified_target_exits_0_and_prints_where_the_reports_are(issuer_run: Run):
    """Issue 3 (Verdict): ``rotcert server`` exits 0 when every requested profile
    is certified, and prints the verdict and where the reports are."""
    assert issuer_run.returncode == cli.EXIT_CERTIFIED, issuer_run.stderr
    for profile in DEFAULT_PROFILES:
        assert f"rotcert {profile}: CERTIFIED" in issuer_run.stdout
    for name, label in zip(REPORTS, ("report:", "junit:", "summary:"), strict=True):
        path = issuer_run.out / name
        shown = rf"^{label}\s+{re.escape(str(path))}$"
        assert re.search(shown, issuer_run.stdout, re.MULTILINE), issuer_run.stdout
        assert path.is_file()


def test_report_html_is_self_contained(issuer_run: Run):
    """Issue 3 (Verdict): the pytest-html report is one self-contained file: no
    stylesheet, script, image or asset folder beside it."""
    document = Document((issuer_run.out / "report.html").read_text())

    assert document.tags("link") == []
    assert all(not attrs.get("src") for attrs in document.tags("script"))
    for tag in ("img", "source", "iframe", "embed"):
        for attrs in document.tags(tag):
            assert (attrs.get("src") or "data:").startswith("data:"), (tag, attrs)
    assert not (issuer_run.out / "assets").exists()


def test_report_html_opens_with_the_verdict_banner(issuer_run: Run):
    """Issue 3 (Verdict): the verdict per profile (profile and status) is at the
    top of the report, before the results."""
    report = (issuer_run.out / "report.html").read_text()
    document = Document(report)

    banner = document.index("section", **{"class": "rotcert-verdicts"})
    assert banner < document.index("table", id="results-table")
    rows = [
        attrs
        for attrs in document.tags("tr")
        if attrs.get("class") == "rotcert-verdict"
    ]
    assert [row.get("data-certified") for row in rows] == ["True"] * 3
    cells = [
        Document("<tr" + chunk.partition("</tr>")[0]).text
        for chunk in report.split('<tr class="rotcert-verdict"')[1:]
    ]
    for profile, text in zip(DEFAULT_PROFILES, cells, strict=True):
        assert text[0] == profile
        assert "CERTIFIED" in text and "NOT CERTIFIED" not in "".join(text)


def test_report_html_has_one_section_per_scenario(issuer_run: Run):
    """Issue 3 (Verdict): one section per scenario with its id, requirement,
    steps, redacted HTTP transcript and a picture of the family's lineage."""
    report = (issuer_run.out / "report.html").read_text()
    summary = json.loads((issuer_run.out / "summary.json").read_text())
    sections = scenario_sections(report)

    assert set(sections) == SCENARIO_IDS
    pictured = 0
    for scenario in summary["scenarios"]:
        section = Document(sections[scenario["scenario_id"]])
        assert scenario["scenario_id"] in "".join(section.text)
        section.index("p", **{"class": "rotcert-requirement"})
        assert scenario["requirement"] in "".join(section.text)
        if scenario["outcome"] != "passed":
            continue
        section.index("ol", **{"class": "rotcert-steps"})
        section.index("div", **{"class": "rotcert-transcript"})
        if scenario["lineages"]:
            figure = section.index("div", **{"class": "rotcert-lineage-figure"})
            assert section.elements[figure + 1][0] == "svg"
            pictured += 1
    assert pictured >= len(SCENARIO_IDS) // 2


def test_junit_xml_has_one_testcase_per_scenario(issuer_run: Run):
    """Issue 3 (Verdict): JUnit XML for CI parses and has one test case per
    scenario, with its outcome."""
    tree = ET.parse(issuer_run.out / "junit.xml")
    summary = json.loads((issuer_run.out / "summary.json").read_text())

    cases = list(tree.getroot().iter("testcase"))
    assert len(cases) == len(SCENARIO_IDS)
    assert {case.get("name") for case in cases} == SCENARIO_FUNCTIONS
    skipped = [case for case in cases if case.find("skipped") is not None]
    expected = [s for s in summary["scenarios"] if s["outcome"] == "skipped"]
    assert len(skipped) == len(expected)
    assert not [case for case in cases if case.find("failure") is not None]


def test_summary_json_schema(issuer_run: Run):
    """Issue 3 (Verdict): the JSON summary for CI holds the verdicts and, per
    scenario, its id, outcome, requirement and the broken modes it catches."""
    summary = json.loads((issuer_run.out / "summary.json").read_text())

    assert set(summary) >= {"rotcert", "target", "verdicts", "scenarios"}
    assert summary["target"]["embedded"] is False
    assert [v["profile"] for v in summary["verdicts"]] == DEFAULT_PROFILES
    for verdict in summary["verdicts"]:
        assert verdict["status"] == "CERTIFIED"
        assert verdict["certified"] is True and verdict["incomplete"] is False
        for key in ("passed", "failed", "not_run", "not_applicable"):
            assert isinstance(verdict[key], list)
        assert set(verdict["passed"]) <= SCENARIO_IDS
    assert {s["scenario_id"] for s in summary["scenarios"]} == SCENARIO_IDS
    for scenario in summary["scenarios"]:
        assert scenario["outcome"] in OUTCOMES
        assert re.fullmatch(
            r"(STD-RT-\d+|K\d+)(, (STD-RT-\d+|K\d+))*", scenario["requirement"]
        )
        assert set(scenario["catches"]) <= set(BROKEN_MODES)
        assert scenario["profiles"] and scenario["title"]
        assert "transcript" not in scenario
        if scenario["outcome"] == "skipped":
            assert scenario["reason"]


def test_reports_hold_no_secret_and_no_token(issuer_run: Run):
    """DESIGN (Record, don't log) and issue 3 (Verdict): no client secret and no
    access or refresh token value appears in the HTML, JUnit or JSON reports."""
    assert issuer_run.returncode == cli.EXIT_CERTIFIED, issuer_run.stderr
    # The recorder saw the tokens: a run of the catalogue mints well over 50.
    assert len(issuer_run.tokens) > 50
    secrets = issuer_run.secrets + issuer_run.tokens

    for name in REPORTS:
        text = (issuer_run.out / name).read_text()
        leaked = [secret for secret in secrets if secret in text]
        assert leaked == [], f"{name} holds {len(leaked)} secret values"
        if name == "report.html":  # the page also holds base64 data of its own
            text = "".join(scenario_sections(text).values())
        assert TOKEN_SHAPE.findall(text) == [], name
    assert not any(secret in issuer_run.stdout for secret in secrets)


# -------------------------------------------------- exit codes, in-process


@pytest.fixture
def rotcert(pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]):
    """``rotcert server ARGS`` in this process: the CLI's own code, with its
    pytest run isolated by pytester. Returns (exit code, stdout + stderr)."""

    def run(
        *args: str, plugins: tuple = (), command: str = "server"
    ) -> tuple[int, str]:
        def isolated_main(argv: list[str], plugins: list | tuple = ()) -> int:
            # pytest-benchmark warns under xdist; the project disables it too.
            argv = ["-p", "no:benchmark", *argv]
            return pytester.inline_run(*argv, plugins=[*extra, *plugins]).ret

        extra = list(plugins)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(pytest, "main", isolated_main)
            code = cli.main([command, *args])
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    return run


def test_no_target_certifies_the_embedded_mock(rotcert, pytester: pytest.Pytester):
    """Issue 3 (Done when): ``rotcert server`` with no target certifies the
    embedded mock under the Databricks example policy and writes the report."""
    out = pytester.path / "reports"

    code, text = rotcert(f"--out={out}", "--race-rounds=3")

    assert code == cli.EXIT_CERTIFIED, text
    for profile in DEFAULT_PROFILES:
        assert f"rotcert {profile}: CERTIFIED" in text
    assert f"report:  {out / 'report.html'}" in text
    # The grace scenarios skip under a policy without grace; the verdict says so.
    assert re.search(
        r"databricks\s+CERTIFIED\s+\d+ passed, 0 failed, \d+ not applicable", text
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["target"]["embedded"] is True
    assert summary["target"]["declared_policy"] == {
        "access_token_ttl_in_minutes": 60,
        "refresh_token_ttl_in_minutes": 1440,
        "enable_single_use_refresh_tokens": True,
        "absolute_session_lifetime_in_minutes": 43200,
    }


USAGE_ERRORS = {
    "unknown-profile": (["--profile=nope"], "unknown profile 'nope'"),
    "bad-policy": (
        ["--policy=bad.json"],
        "policy field 'access_token_ttl_in_minutes' is 2; allowed: an integer "
        "from 5 to 1440",
    ),
    "policy-and-preset": (
        ["--policy=bad.json", "--preset=okta"],
        # rotcert server's own flags are named, not the plugin's.
        "Give --policy or --preset, not both.",
    ),
    "non-numeric-timeout": (["--timeout=ten"], "must be a number, got 'ten'"),
    "unknown-broken-mode": (["--broken-mode=nope"], "unknown broken mode 'nope'"),
    "unreachable-issuer": (
        ["--issuer=http://127.0.0.1:{closed}"],
        "Cannot reach the issuer http://127.0.0.1:{closed}: no answer from GET "
        "http://127.0.0.1:{closed}/.well-known/oauth-authorization-server: "
        "connection refused",
    ),
    "missing-client-secret": (
        ["--token-endpoint=http://127.0.0.1:{closed}/token", "--client-id=c"],
        "ROTCERT_CLIENT_SECRET is not set: set it, or give --client-auth none",
    ),
}


@pytest.mark.parametrize("case", sorted(USAGE_ERRORS))
def test_usage_error_exits_2(rotcert, pytester: pytest.Pytester, case: str):
    """Issue 3 (Verdict): ``rotcert server`` exits 2 on a usage error, with the
    message that says what to fix and no traceback."""
    args, message = USAGE_ERRORS[case]
    closed = closed_port()
    policy = {
        "access_token_ttl_in_minutes": 2,
        "refresh_token_ttl_in_minutes": 1440,
        "enable_single_use_refresh_tokens": True,
    }
    (pytester.path / "bad.json").write_text(json.dumps(policy))
    out = pytester.path / "reports"

    code, text = rotcert(f"--out={out}", *(a.format(closed=closed) for a in args))

    assert code == cli.EXIT_USAGE, text
    assert message.format(closed=closed) in text
    assert "Traceback" not in text
    assert "rotcert rfc9700" not in text


def test_missing_second_client_secret_names_client_auth_none(
    rotcert, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
):
    """Usage errors: a second client without its secret is refused with both
    fixes, its variable and ``--client-auth none`` for public clients."""
    monkeypatch.setenv("ROTCERT_CLIENT_SECRET", "main-secret")
    token = f"--token-endpoint=http://127.0.0.1:{closed_port()}/token"
    out = pytester.path / "reports"

    code, text = rotcert(f"--out={out}", token, "--client-id=c", "--second-client-id=d")

    assert code == cli.EXIT_USAGE, text
    assert (
        "second client 'd' needs its secret in ROTCERT_SECOND_CLIENT_SECRET (or, "
        "if both clients are public, give --client-auth none)"
    ) in text


def test_broken_mode_is_named_in_the_summary_and_the_report_target(
    rotcert, pytester: pytest.Pytester
):
    """DESIGN (mutation): with ``--broken-mode``, the terminal, summary.json's
    target and the HTML report's Target section name the broken mode the mock ran
    with."""
    out = pytester.path / "reports"

    code, text = rotcert(
        f"--out={out}", "--broken-mode=reuse_accepted", "-k", "S-ROT-01"
    )

    assert code == cli.EXIT_NOT_CERTIFIED, text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["target"]["broken_modes"] == ["reuse_accepted"]
    html = (out / "report.html").read_text()
    assert "Broken mode active:</b> <code>reuse_accepted</code>" in html
    assert "broken mode active: reuse_accepted (the mock is deliberately" in text
    # Each failure is named by the verdict; pytest's path list would repeat it.
    assert "short test summary info" not in text


def test_no_printed_path_names_the_staging_folder(rotcert, pytester: pytest.Pytester):
    """Reports and CI: the run prints where report.html and junit.xml end up;
    pytest-html's and JUnit's own lines, which name the staging folder that is
    gone after the run, are not printed."""
    out = pytester.path / "reports"

    code, text = rotcert(f"--out={out}", "-k", "S-ROT-01")

    assert code == cli.EXIT_NOT_CERTIFIED, text
    assert cli.STAGE not in text
    assert f"report:  {out / 'report.html'}" in text


def test_client_run_prints_no_declared_policy_it_does_not_run(
    rotcert, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
):
    """rotcert client: each scenario sets the mock's policy itself (and a command
    adapter gets 1 s access tokens), so the verdict does not print the declared
    policy as if the mock ran it, and names no staging folder."""
    monkeypatch.setenv("ROTCERT_ADAPTER", "")  # run_client sets it; undone after
    out = pytester.path / "reports"

    code, text = rotcert(
        "--adapter=reference", f"--out={out}", "-k", "C-ROT-01", command="client"
    )

    assert code == cli.EXIT_NOT_CERTIFIED, text
    assert "declared policy:" not in text
    assert "server policy: set by each scenario" in text
    assert cli.STAGE not in text


def test_race_threads_beyond_the_cap_is_a_usage_error(
    rotcert, pytester: pytest.Pytester
):
    """Issue 3 (Verdict): --race-threads above 256 is a usage error when the run
    starts, not a RuntimeError when the race scenario cannot start its threads."""
    code, text = rotcert(f"--out={pytester.path / 'r'}", "--race-threads=100000")

    assert code == cli.EXIT_USAGE, text
    assert "--race-threads must be at most 256, got '100000'" in text
    assert "Traceback" not in text


# Grant sources that cannot give a grant: the --grant-source value (PATH is the
# test's folder) and the words the usage error must use.
GRANT_SOURCE_ERRORS = {
    "unterminated-quote": (
        "command:'unterminated",
        "--grant-source command:'unterminated cannot be split into words "
        "(No closing quotation)",
    ),
    "device-file": ("file:/dev/zero", "grant file '/dev/zero' is not a regular file"),
    "oversized-file": ("file:{path}/big.json", "is larger than 1048576 bytes"),
    "nested-file": ("file:{path}/deep.json", "holds JSON nested too deeply to read"),
    "nested-lines": ("file:{path}/deep.jsonl", "line 2 holds JSON nested too deeply"),
    "non-utf8-command": (
        "command:{python} {path}/bytes.py",
        "printed bytes that are not UTF-8 text (at byte 19)",
    ),
    "nested-command": (
        "command:{python} {path}/deep.py",
        "printed JSON nested too deeply to read",
    ),
    "endless-command": (
        "command:{python} {path}/endless.py",
        "printed more than 1048576 bytes",
    ),
}
GRANT = {"access_token": "a" * 43, "refresh_token": "r" * 43}
DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("case", sorted(GRANT_SOURCE_ERRORS))
def test_unusable_grant_source_is_a_usage_error(
    rotcert, pytester: pytest.Pytester, case: str
):
    """Issue 3 (Reaching a server): a grant command that cannot be split, prints
    bytes that are not UTF-8, JSON nested 100000 deep or output without end,
    and a grant file that is a device, over 1 MiB or nested 100000 deep, are
    each a usage error (exit 2) that says so; no traceback, hang or OOM."""
    folder = pytester.path
    (folder / "big.json").write_text(json.dumps([GRANT] * 12_000))
    (folder / "deep.json").write_text(DEEP)
    (folder / "deep.jsonl").write_text(json.dumps(GRANT) + "\n" + DEEP + "\n")
    (folder / "bytes.py").write_text(
        r"""import sys; sys.stdout.buffer.write(b'{"refresh_token": "\xff\xfe"}')"""
    )
    (folder / "deep.py").write_text("print('[' * 100_000 + ']' * 100_000)\n")
    (folder / "endless.py").write_text("while True:\n    print('x' * 4096)\n")
    spec, message = GRANT_SOURCE_ERRORS[case]

    code, text = rotcert(
        f"--out={folder / 'r'}",
        f"--token-endpoint=http://127.0.0.1:{closed_port()}/token",
        "--client-id=c",
        "--client-auth=none",
        "--grant-source=" + spec.format(path=folder, python=sys.executable),
    )

    assert code == cli.EXIT_USAGE, text
    assert message in text
    assert "Traceback" not in text and "INTERNALERROR" not in text


def test_unwritable_report_folder_exits_2(rotcert, pytester: pytest.Pytester):
    """Issue 3 (Verdict): a report folder that cannot be made is a usage error
    (exit 2 and a message), not a traceback."""
    blocker = pytester.path / "a-file"
    blocker.write_text("not a folder")

    code, text = rotcert(f"--out={blocker / 'reports'}")

    assert code == cli.EXIT_USAGE
    assert f"cannot write reports to {blocker / 'reports'}" in text


class BrokenPlugin:
    """Another installed plugin that fails as pytest starts."""

    def pytest_configure(self, config):
        raise RuntimeError("a broken third-party plugin")


def test_stale_summary_is_never_read_as_the_verdict(rotcert, pytester: pytest.Pytester):
    """Issue 3 (Verdict): when a run ends without writing its summary, a summary
    left in the folder by an earlier run is not reported as this run's verdict."""
    out = pytester.path / "reports"
    out.mkdir()
    stale = {
        "verdicts": [{"profile": "rfc9700", "status": "CERTIFIED", "certified": True}]
    }
    (out / "summary.json").write_text(json.dumps(stale))

    code, text = rotcert(f"--out={out}", plugins=(BrokenPlugin(),))

    assert code == cli.EXIT_USAGE, text
    assert "CERTIFIED" not in text
    assert "no summary was written" in text


def test_usage_error_keeps_the_last_good_reports(rotcert, pytester: pytest.Pytester):
    """Issue 3 (Reports and CI): a run that ends in a usage error leaves the
    previous report.html, junit.xml and summary.json untouched."""
    out = pytester.path / "reports"
    code, _ = rotcert(f"--out={out}", "-k", "S-ROT-01")
    before = {n: (out / n).read_bytes() for n in ("report.html", "junit.xml")}

    code, text = rotcert(f"--out={out}", "--broken-mode=nonsense")

    assert code == cli.EXIT_USAGE, text
    assert {n: (out / n).read_bytes() for n in before} == before
    assert not (out / cli.STAGE).exists()


def test_parallel_run_on_a_shared_admin_clock_is_refused(
    rotcert, pytester: pytest.Pytester
):
    """Issue 3 (Time): scenarios that move one shared admin clock cannot run in
    parallel; rotcert says so instead of reporting false failures."""
    base, stop = start_in_thread(MockServer())
    try:
        code, text = rotcert(
            f"--out={pytester.path / 'r'}", f"--issuer={base}", "-n", "2"
        )
    finally:
        stop()

    assert code == cli.EXIT_USAGE, text
    assert "run without -n" in text


def test_wrong_client_secret_is_one_usage_error(
    rotcert, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
):
    """Issue 3 (Reaching a server): wrong client credentials are caught by a
    preflight refresh and said once, not charged to the server per scenario."""
    monkeypatch.setenv("ROTCERT_CLIENT_SECRET", "not-the-secret")
    base, stop = start_in_thread(MockServer())
    try:
        code, text = rotcert(
            f"--out={pytester.path / 'r'}",
            f"--issuer={base}",
            "--client-id=rotcert-client",
        )
    finally:
        stop()

    assert code == cli.EXIT_USAGE, text
    assert "refused the credentials of client 'rotcert-client'" in text


def test_unknown_flag_names_the_subcommand_usage(capsys: pytest.CaptureFixture):
    """DESIGN (CLI): a mistyped flag is reported with rotcert server's usage."""
    with pytest.raises(SystemExit) as info:
        cli.main(["server", "--isuer", "x"])

    assert info.value.code == 2
    assert "rotcert server: error: unrecognized arguments: --isuer x" in (
        capsys.readouterr().err
    )


# ------------------------------------------------- the console script itself


def test_broken_mode_exits_1_and_names_the_failures(pytester: pytest.Pytester):
    """Issue 3 (Verdict) and DESIGN (mutation): the console script exits 1 when a
    profile is not certified, prints the verdict and where the report is."""
    out = pytester.path / "reports"

    result = pytester.run(
        rotcert_executable(),
        "server",
        "--broken-mode=reuse_accepted",
        "--race-rounds=3",
        f"--out={out}",
        timeout=120,
    )

    assert result.ret == cli.EXIT_NOT_CERTIFIED, result.stderr.str()
    text = result.stdout.str()
    for profile in DEFAULT_PROFILES:
        assert f"rotcert {profile}: NOT CERTIFIED" in text
    assert f"report:  {out / 'report.html'}" in text
    assert (out / "report.html").is_file()
    summary = json.loads((out / "summary.json").read_text())
    failed = {
        s["scenario_id"] for s in summary["scenarios"] if s["outcome"] == "failed"
    }
    assert failed and all(
        "reuse_accepted" in s["catches"]
        for s in summary["scenarios"]
        if s["scenario_id"] in failed
    )
