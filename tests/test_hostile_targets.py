"""Servers that do not answer like an authorization server (issue 3, "Reaching a
server"): HTML, garbage, an empty body, a redirect, a 5xx, a dropped connection
and silence. The run always completes, each failing scenario says what the server
did, and nothing the server sends becomes markup in the report."""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

# hypothesis, werkzeug.test and conformance.session are imported here, once, so
# that pytester's in-process runs (which drop modules first imported inside them)
# share one copy of requests and werkzeug, and do not import hypothesis (loaded by
# its plugin) afresh each run.
import hypothesis  # noqa: F401
import pytest
import requests
import werkzeug.test  # noqa: F401

import conformance.session  # noqa: F401
from conformance.http import MAX_READ_BYTES
from conformance.target import TargetError, discover
from conformance.timecontrol import AdminClock

pytest_plugins = ["pytester"]

# The silent server is waited on this long; the others answer at once.
TIMEOUT = 0.1
SCRIPT = "<script>alert(1)</script>"
IMAGE = '<img src=x onerror="alert(2)">'

# What each server does, and the words a diagnosis of it must use.
DIAGNOSES = {
    "html": "answered text/html",
    "garbage": "that is not valid JSON",
    "empty": "with an empty body",
    "redirect": "redirected (302) to http://127.0.0.1:9/login",
    "error": "server error 500",
    "close": "the server closed the connection",
    "silent": f"timed out after {TIMEOUT:g} s",
}

ECHO_ACCESS = "echo-access-token-0123456789abcdef"
ECHOED_NUMBER_TRIGGER = "echo-number-please-0123456789abcdef"

# Discovery metadata with one unusable endpoint: the field, its value, and how
# the error names the value.
BAD_METADATA = {
    "list": ("token_endpoint", ["x"], "token_endpoint as a JSON array"),
    "number": ("token_endpoint", 42, "token_endpoint as a JSON number"),
    "null": ("token_endpoint", None, "token_endpoint as a JSON null"),
    "object": ("revocation_endpoint", {"u": 1}, "revocation_endpoint as a JSON object"),
    "relative": ("authorization_endpoint", "/authorize", "as '/authorize'"),
    "bad-host": ("introspection_endpoint", "http://[::1", "as 'http://[::1'"),
}
DRIP_BYTES, DRIP_PAUSE = 100, 0.05

# Tokens the escaping server issued, so a test can look for them in the outputs.
ESCAPED_ISSUED_PREFIX = "esc-issued-"
ESCAPED_ISSUED: list[str] = []

PYTHON_ERRORS = re.compile(
    r"Traceback|File \"|\b(Key|Attribute|Type|Value|Index|Name|JSONDecode)Error\b"
)


def json_escaped(text: str) -> str:
    """text with every character written as a JSON \\u escape."""
    return "".join(f"\\u{ord(c):04x}" for c in text)


class Hostile(BaseHTTPRequestHandler):
    """Answers by the first path segment: /html/token answers a login page."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without this, Nagle's algorithm
    # and delayed ACKs cost 40 ms per answer on a kept-alive connection.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        """Quiet: the test output is the report's, not the server's."""

    def do_GET(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.form = raw.decode("utf-8", "replace")
        mode = self.path.strip("/").split("/")[0]
        getattr(self, "answer_" + mode, self.answer_error)()

    do_POST = do_GET

    def send(self, status, body=b"", content_type=None, headers=()):
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def answer_html(self):
        page = b"<!doctype html><html><body><form>Sign in</form></body></html>"
        self.send(200, page, "text/html; charset=utf-8")

    def answer_garbage(self):
        self.send(200, bytes(range(256)) * 2, "application/json")

    def answer_empty(self):
        self.send(200)

    def answer_redirect(self):
        self.send(302, headers=[("Location", "http://127.0.0.1:9/login")])

    def answer_error(self):
        self.send(500, b"upstream exploded", "text/plain")

    def answer_close(self):
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def answer_silent(self):
        time.sleep(TIMEOUT * 6)
        self.close_connection = True

    def answer_ansi(self):
        # Terminal escapes that would wipe the verdict lines and print others.
        body = b"\x1b[2A\x1b[2Krfc9700 CERTIFIED\x07\x00"
        self.send(200, body, "application/json")

    def answer_echo(self):
        # Echoes the presented refresh token in its error description, and
        # hands out new tokens, one of them as a JSON number.
        form = getattr(self, "form", "")
        presented = parse_qs(form).get("refresh_token", [""])[0]
        if presented == ECHOED_NUMBER_TRIGGER:
            body = {"access_token": ECHO_ACCESS, "refresh_token": 987654321987654}
            self.send(200, json.dumps(body).encode(), "application/json")
            return
        body = {
            "error": "invalid_request",
            "error_description": f"Refresh token is invalid: bad token {presented}",
        }
        self.send(400, json.dumps(body).encode(), "application/json")

    def answer_escaped(self):
        # Token members and values all spelled with JSON escapes: a grant's token
        # is refreshed once, a token this server issued is echoed in a 503.
        presented = parse_qs(getattr(self, "form", "")).get("refresh_token", [""])[0]
        if presented.startswith(ESCAPED_ISSUED_PREFIX):
            body = (
                '{"error": "temporarily_unavailable", '
                f'"refresh\\u005ftoken": "{json_escaped(presented)}"}}'
            )
            self.send(503, body.encode(), "application/json")
            return
        access, refresh = (
            f"{ESCAPED_ISSUED_PREFIX}{len(ESCAPED_ISSUED):06d}-{name}-0123456789"
            for name in ("access", "refresh")
        )
        ESCAPED_ISSUED.extend([access, refresh])
        body = (
            f'{{"{json_escaped("access_token")}": "{json_escaped(access)}", '
            f'"refresh\\u005ftoken": "{json_escaped(refresh)}", '
            '"token_type": "Bearer", "expires_in": 3600}'
        )
        self.send(200, body.encode(), "application/json")

    def answer_deep(self):
        self.send(200, b"[" * 100_000 + b"]" * 100_000, "application/json")

    def answer_meta(self):
        # /meta/CASE/.well-known/...: metadata with one endpoint of a wrong type.
        field, value, _ = BAD_METADATA[self.path.strip("/").split("/")[1]]
        body = {"token_endpoint": "http://127.0.0.1:9/token", field: value}
        self.send(200, json.dumps(body).encode(), "application/json")

    def answer_drip(self):
        # Each byte arrives well within a read timeout; the whole never does.
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(DRIP_BYTES))
        self.end_headers()
        try:
            for _ in range(DRIP_BYTES):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(DRIP_PAUSE)
        except OSError:
            self.close_connection = True

    def answer_huge(self):
        body = {"token_endpoint": "http://127.0.0.1:9/token", "pad": "a" * 3_000_000}
        try:
            self.send(200, json.dumps(body).encode(), "application/json")
        except OSError:  # rotcert stops reading at its cap and hangs up
            self.close_connection = True

    def answer_script(self):
        body = {"error": "invalid_grant", "error_description": SCRIPT, IMAGE: IMAGE}
        self.send(
            400,
            json.dumps(body).encode(),
            "application/json",
            headers=[("WWW-Authenticate", IMAGE), ("X-Note", SCRIPT)],
        )


@pytest.fixture(scope="module")
def hostile_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def vendor_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("ROTCERT_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("ROTCERT_CLIENT_SECRET", "vendor-secret-value-1")
    monkeypatch.setenv("ROTCERT_SECOND_CLIENT_SECRET", "vendor-secret-value-2")


def run_against(
    pytester: pytest.Pytester,
    base: str,
    timeout: float = 5.0,
    refresh_tokens: list[str] | None = None,
) -> pytest.RunResult:
    """The catalogue against one hostile server, with a file of fake grants."""
    grant = {
        "access_token": "hostile-access-token-value",
        "refresh_token": "hostile-refresh-token-value",
        "token_type": "Bearer",
        "expires_in": 3600,
        "scope": "all-apis offline_access",
    }
    tokens = refresh_tokens or [grant["refresh_token"]] * 100
    grants = pytester.path / "grants.json"
    grants.write_text(json.dumps([{**grant, "refresh_token": t} for t in tokens]))
    return pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        "-p",
        "no:benchmark",
        f"--rotcert-token-endpoint={base}/token",
        f"--rotcert-revocation-endpoint={base}/revoke",
        f"--rotcert-introspection-endpoint={base}/introspect",
        "--rotcert-client-id=vendor-client",
        "--rotcert-second-client-id=vendor-second",
        f"--rotcert-grant-source=file:{grants}",
        f"--rotcert-timeout={timeout:g}",
        "--rotcert-race-threads=2",
        "--rotcert-race-rounds=1",
        "--rotcert-summary=summary.json",
        "--html=report.html",
        "--self-contained-html",
        "--junitxml=junit.xml",
    )


class Elements(HTMLParser):
    """The elements, attribute names, text and script contents of some HTML."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[str] = []
        self.text: list[str] = []
        self.scripts: list[str] = []
        self._open = ""
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes.extend(name for name, _ in attrs)
        self._open = tag

    def handle_endtag(self, tag):
        self._open = ""

    def handle_data(self, data):
        self.text.append(data)
        if self._open == "script":
            self.scripts.append(data)


def rendered_sections(report: str) -> dict[str, str]:
    """The HTML pytest-html's script inserts per test (extras and log), by id."""
    blob = ""

    class Blob(HTMLParser):
        def handle_starttag(self, tag, attrs):
            nonlocal blob
            blob = dict(attrs).get("data-jsonblob") or blob

    Blob().feed(report)
    sections = {}
    for reports in json.loads(blob)["tests"].values():
        for entry in reports:
            html = "".join(e["content"] for e in entry.get("extras", []))
            found = re.search(r'id="rotcert-(S-[A-Z0-9-]+)"', html)
            if found:
                sections[found.group(1)] = html + "".join(entry.get("log", ""))
    return sections


@pytest.mark.parametrize("mode", sorted(DIAGNOSES))
def test_hostile_server_fails_with_a_diagnosis(
    pytester: pytest.Pytester, hostile_url: str, mode: str
):
    """Issue 3 (Reaching a server): a server that answers HTML, garbage, nothing
    or a redirect, a 5xx, or that hangs up or stays silent past the timeout makes
    scenarios fail with a diagnosis and a transcript; the run always completes."""
    timeout = TIMEOUT if mode == "silent" else 5.0
    result = run_against(pytester, f"{hostile_url}/{mode}", timeout)

    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    assert "INTERNALERROR" not in result.stdout.str()
    summary = json.loads((pytester.path / "summary.json").read_text())
    assert summary["verdicts"]
    assert not any(v["certified"] for v in summary["verdicts"])
    assert all(v["failed"] for v in summary["verdicts"])

    failed = {
        s["scenario_id"]: s for s in summary["scenarios"] if s["outcome"] == "failed"
    }
    assert len(failed) >= 10
    for scenario in summary["scenarios"]:
        assert not PYTHON_ERRORS.search(scenario["reason"] or ""), scenario
    vague = {
        k: s["reason"] for k, s in failed.items() if DIAGNOSES[mode] not in s["reason"]
    }
    assert not vague, f"reasons that do not say what the server did: {vague}"

    sections = rendered_sections((pytester.path / "report.html").read_text())
    for scenario_id in failed:
        section = Elements(sections[scenario_id])
        assert "HTTP transcript" in "".join(section.text)
        assert DIAGNOSES[mode] in " ".join("".join(section.text).split())


def test_server_values_are_escaped_in_the_report(
    pytester: pytest.Pytester, hostile_url: str
):
    """STYLE 5 and issue 3 (Verdict): an error_description, header or body that
    holds markup is shown as text in report.html and never becomes an element."""
    result = run_against(pytester, f"{hostile_url}/script")

    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    report = (pytester.path / "report.html").read_text()
    page = Elements(report)
    assert not [script for script in page.scripts if "alert(" in script]
    assert "onerror" not in page.attributes

    sections = rendered_sections(report)
    summary = json.loads((pytester.path / "summary.json").read_text())
    reasons = [s["reason"] or "" for s in summary["scenarios"]]
    assert any(SCRIPT in reason for reason in reasons)
    shown = 0
    for html in sections.values():
        section = Elements(html)
        assert not {"script", "img", "iframe"} & set(section.tags)
        assert "onerror" not in section.attributes
        text = "".join(section.text)
        shown += SCRIPT in text and IMAGE in text
    assert shown >= 5
    assert SCRIPT in "".join(page.text)  # the verdict banner quotes the reasons


def test_control_characters_from_the_server_never_reach_the_terminal(
    pytester: pytest.Pytester, hostile_url: str
):
    """Issue 3 (Reaching a server): what a server sends cannot drive the user's
    terminal: control characters in its answers are shown escaped."""
    result = run_against(pytester, f"{hostile_url}/ansi")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    summary = json.loads((pytester.path / "summary.json").read_text())
    reasons = "".join(s["reason"] or "" for s in summary["scenarios"])
    assert "\x1b[2K" not in reasons and "\x00" not in reasons
    assert "\x1b[2K" not in result.stdout.str()


def test_tokens_the_target_echoes_never_reach_any_output(
    pytester: pytest.Pytester, hostile_url: str
):
    """Issue 3 (Verdict and reports): a server that echoes the presented refresh
    token in its error description, or sends a token as a JSON number, leaks
    neither into the terminal, report.html, junit.xml or summary.json."""
    tokens = [f"echo-refresh-{n:04d}-0123456789abcdefghij" for n in range(60)]
    tokens[0] = ECHOED_NUMBER_TRIGGER
    result = run_against(pytester, f"{hostile_url}/echo", refresh_tokens=tokens)

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    outputs = [result.stdout.str()] + [
        (pytester.path / name).read_text()
        for name in ("report.html", "summary.json", "junit.xml")
    ]
    for text in outputs:
        for secret in [*tokens, ECHO_ACCESS, "987654321987654"]:
            assert secret not in text
    summary = json.loads((pytester.path / "summary.json").read_text())
    reasons = " ".join(s["reason"] or "" for s in summary["scenarios"])
    assert "bad token fp:" in reasons


def test_tokens_the_target_spells_with_escapes_never_reach_any_output(
    pytester: pytest.Pytester, hostile_url: str
):
    """Issue 3 (Verdict and reports): a server that writes token members and
    values with JSON \\u escapes leaks no token, decoded or escaped, into the
    terminal, report.html, junit.xml or summary.json."""
    tokens = [f"escaped-grant-{n:04d}-0123456789abcdefghij" for n in range(60)]
    result = run_against(pytester, f"{hostile_url}/escaped", refresh_tokens=tokens)

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert ESCAPED_ISSUED
    outputs = [result.stdout.str()] + [
        (pytester.path / name).read_text()
        for name in ("report.html", "summary.json", "junit.xml")
    ]
    for text in outputs:
        # However many times the escapes' backslashes were escaped again.
        flat = text.replace("\\", "")
        for secret in [*tokens, *ESCAPED_ISSUED]:
            assert secret not in text
            assert json_escaped(secret[:10]).replace("\\", "") not in flat
    summary = json.loads((pytester.path / "summary.json").read_text())
    reasons = " ".join(s["reason"] or "" for s in summary["scenarios"])
    assert '"refresh_token": "fp:' in reasons


# ------------------------------------------------------------------ discovery


def test_discovery_answer_nested_too_deeply_is_a_clear_error(hostile_url: str):
    """Issue 3 (Reaching a server): metadata nested 100000 deep is said to be
    unreadable, naming the URL; no RecursionError escapes."""
    with pytest.raises(TargetError) as info:
        discover(requests.Session(), f"{hostile_url}/deep", 5.0)

    message = str(info.value)
    assert "No authorization server metadata" in message
    assert f"GET {hostile_url}/deep/.well-known/" in message
    assert "nested too deeply to read" in message


@pytest.mark.parametrize("case", sorted(BAD_METADATA))
def test_discovery_metadata_endpoint_of_a_wrong_type_names_the_field(
    hostile_url: str, case: str
):
    """Issue 3 (Reaching a server): a metadata endpoint that is a list, a number,
    null, an object or no absolute http(s) URL is a usage error naming the
    field, not a TypeError in the redactor or urllib3."""
    with pytest.raises(TargetError) as info:
        discover(requests.Session(), f"{hostile_url}/meta/{case}", 5.0)

    message = str(info.value)
    assert BAD_METADATA[case][2] in message
    assert "it must be an http:// or https:// URL" in message
    assert not PYTHON_ERRORS.search(message)


def test_discovery_that_drips_is_abandoned_at_the_timeout(hostile_url: str):
    """Issue 3 (Reaching a server): metadata sent a byte at a time is abandoned
    after --rotcert-timeout in total, not after however long the server likes."""
    started = time.monotonic()
    with pytest.raises(TargetError) as info:
        discover(requests.Session(), f"{hostile_url}/drip", 0.3)
    elapsed = time.monotonic() - started

    assert elapsed < DRIP_BYTES * DRIP_PAUSE * 0.8
    assert f"no answer from GET {hostile_url}/drip/.well-known/" in str(info.value)
    assert "timed out after 0.3 s" in str(info.value)


def test_discovery_answer_too_large_is_refused(hostile_url: str):
    """Issue 3 (Reaching a server): metadata over the size cap is refused after
    reading the cap, however much the server sends."""
    with pytest.raises(TargetError) as info:
        discover(requests.Session(), f"{hostile_url}/huge", 5.0)

    assert f"answered more than {MAX_READ_BYTES} bytes" in str(info.value)


def test_admin_clock_that_drips_is_abandoned_at_the_timeout(hostile_url: str):
    """Issue 3 (Time): an admin clock endpoint (which discovery may name) that
    answers a byte at a time fails the move after --rotcert-timeout in total,
    instead of holding the scenario for as long as the server likes."""
    clock = AdminClock(requests.Session(), f"{hostile_url}/drip", 0.3)

    started = time.monotonic()
    with pytest.raises(AssertionError) as info:
        clock.advance(60)
    elapsed = time.monotonic() - started

    assert elapsed < DRIP_BYTES * DRIP_PAUSE * 0.5
    assert str(info.value).startswith("could not move the admin clock: no answer")
    assert "timed out after 0.3 s" in str(info.value)
