"""HttpClient and WSGIAdapter: every answer diagnosed, every exchange redacted."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import urllib3.exceptions
from freezegun import freeze_time
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

import mock_server
from conformance.http import (
    MAX_SHOWN_CHARS,
    HttpClient,
    ServerAnswerError,
    WSGIAdapter,
)
from conformance.redact import Redactor
from mock_server.tokens import fingerprint

TOKEN = "at-Qm1nF0x_OpqRstUvWxYz0123456789abcd"
REFRESH = "rt-9Yk2_LmNoPqRsTuVwXyZ0123456789efgh"
CLIENT_SECRET = "cs-very-secret-value-42"

Route = Callable[[BaseHTTPRequestHandler], None]


def answer(
    status: int, body: str | bytes = b"", content_type: str | None = None, **headers
) -> Route:
    data = body.encode() if isinstance(body, str) else body

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        if content_type:
            handler.send_header("Content-Type", content_type)
        for name, value in headers.items():
            handler.send_header(name.replace("_", "-"), value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    return route


class LocalServer:
    """A tiny HTTP server whose answers each test scripts, path by path."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: dict[str, int] = {}
        self.release = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, args=(0.02,), daemon=True
        )

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                path = self.path.split("?")[0]
                server.hits[path] = server.hits.get(path, 0) + 1
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                try:
                    server.routes.get(path, answer(404, "nothing here"))(self)
                except OSError:
                    pass  # the client gave up first (the timeout test)

            do_GET = do_POST = _serve

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=2)


@pytest.fixture
def server() -> Iterator[LocalServer]:
    local = LocalServer()
    local.thread.start()
    yield local
    local.stop()


@pytest.fixture
def redactor() -> Redactor:
    return Redactor()


@pytest.fixture
def client(redactor: Redactor) -> Iterator[HttpClient]:
    with HttpClient(redactor, timeout=2.0) as http:
        yield http


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def transcript_text(http: HttpClient) -> str:
    return json.dumps(http.transcript_json())


# --------------------------------------------------------------- usable answers


def test_json_object_answer_is_ok(server, client):
    """A 200 JSON object is ok, has no diagnosis, and json_object returns it."""
    server.routes["/token"] = answer(
        200, '{"token_type": "Bearer"}', "application/json"
    )

    reply = client.post_form(server.url + "/token", {"grant_type": "x"})

    assert reply.ok and reply.diagnosis is None and reply.error is None
    assert reply.json_object() == {"token_type": "Bearer"}
    assert reply.headers["content-type"] == "application/json"


def test_oauth_error_is_an_answer_not_a_diagnosis(server, client):
    """A 400 invalid_grant JSON error is for the scenario to judge: no diagnosis."""
    body = '{"error": "invalid_grant", "error_description": "used"}'
    server.routes["/token"] = answer(400, body, "application/json")

    reply = client.post_form(server.url + "/token", {"grant_type": "x"})

    assert not reply.ok
    assert reply.error == "invalid_grant" and reply.error_description == "used"
    assert reply.diagnosis is None
    assert reply.json_object()["error"] == "invalid_grant"


# -------------------------------------------------------------------- diagnoses


def test_html_answer_is_diagnosed(server, client, redactor):
    """An HTML page gets its type, size and a redacted 120-char excerpt."""
    redactor.add(REFRESH, "refresh_token")
    page = f"<!doctype html><html><body><h1>Sign in</h1>{REFRESH}{'x' * 300}</body>"
    server.routes["/token"] = answer(200, page, "text/html; charset=utf-8")

    reply = client.post_form(server.url + "/token", {"grant_type": "x"})

    assert reply.diagnosis is not None
    assert reply.diagnosis.startswith(
        f"answered text/html ({len(page)} bytes) where JSON was expected: "
        "'<!doctype html><html><body><h1>Sign in</h1>" + fingerprint(REFRESH)
    )
    assert reply.diagnosis.endswith("…'")
    assert REFRESH not in reply.diagnosis
    with pytest.raises(ServerAnswerError, match="where JSON was expected"):
        reply.json_object()


def test_garbage_answer_is_diagnosed(server, client):
    """A body claiming JSON that does not parse says where parsing broke."""
    server.routes["/token"] = answer(200, '{"access_token": ', "application/json")

    reply = client.post_form(server.url + "/token", {"grant_type": "x"})

    assert reply.diagnosis is not None
    assert "is not valid JSON (Expecting value at line 1 column" in reply.diagnosis
    assert reply.json is None
    with pytest.raises(ServerAnswerError) as raised:
        reply.json_object()
    assert str(raised.value).startswith(f"POST {server.url}/token answered")


def test_json_that_is_not_an_object_is_diagnosed(server, client):
    """A JSON array is JSON, but not a token response."""
    server.routes["/token"] = answer(200, "[1, 2]", "application/json")

    reply = client.post_form(server.url + "/token", {"grant_type": "x"})

    assert reply.diagnosis == (
        "answered JSON array where a JSON object was expected: '[1, 2]'"
    )
    assert not reply.ok


def test_empty_answer_is_diagnosed(server, client):
    """An empty body where a JSON object belongs is named as such."""
    server.routes["/token"] = answer(200, b"")

    reply = client.post_form(server.url + "/token", {"grant_type": "x"})

    assert reply.diagnosis == (
        "answered 200 with an empty body where a JSON object was expected"
    )


def test_empty_answer_is_fine_when_no_json_is_expected(server, client):
    """RFC 7009 revocation answers 200 with an empty body; that is no failure."""
    server.routes["/revoke"] = answer(200, b"")

    reply = client.post_form(server.url + "/revoke", {"token": "x"}, expect_json=False)

    assert reply.status == 200 and reply.diagnosis is None


def test_redirect_is_diagnosed_and_not_followed(server, client):
    """A 302 is reported with its Location and the target is never requested."""
    server.routes["/token"] = answer(302, b"", Location=server.url + "/login?next=1")
    server.routes["/login"] = answer(200, "{}", "application/json")

    reply = client.post_form(server.url + "/token", {"grant_type": "x"})

    assert reply.status == 302
    assert reply.diagnosis == (
        f"redirected (302) to {server.url}/login?next=1; "
        "a token endpoint must answer directly"
    )
    assert server.hits.get("/login") is None
    assert len(client.transcript) == 1


def test_server_error_is_diagnosed(server, client):
    """A 5xx is a server error even when its body is a JSON object."""
    body = '{"error": "temporarily_unavailable"}'
    server.routes["/token"] = answer(503, body, "application/json")

    reply = client.post_form(server.url + "/token", {"grant_type": "x"})

    assert reply.diagnosis == (
        'server error 503 Service Unavailable: \'{"error": "temporarily_unavailable"}\''
    )
    assert reply.error == "temporarily_unavailable"


def test_connection_refused_is_diagnosed(client):
    """Nothing listening is an answer too: status None and a hint to start it."""
    url = f"http://127.0.0.1:{free_port()}/token"

    reply = client.post_form(url, {"grant_type": "x"}, step="refresh")

    assert reply.status is None
    assert reply.diagnosis == (
        f"no answer from POST {url}: connection refused (is the server running?)"
    )
    assert client.transcript[0].status is None
    assert client.transcript[0].diagnosis == reply.diagnosis
    with pytest.raises(ServerAnswerError, match="connection refused"):
        reply.json_object()


def test_timeout_is_diagnosed(server, redactor):
    """A server that never answers is cut off at the client's timeout."""

    def hang(handler: BaseHTTPRequestHandler) -> None:
        server.release.wait(timeout=3)

    server.routes["/token"] = hang
    started = time.monotonic()

    with HttpClient(redactor, timeout=0.3) as http:
        reply = http.post_form(server.url + "/token", {"grant_type": "x"})

    assert time.monotonic() - started < 2
    assert reply.status is None
    assert reply.diagnosis == (
        f"no answer from POST {server.url}/token: timed out after 0.3 s "
        "(the connection was made but no answer came)"
    )


def test_slow_drip_is_cut_off_at_the_timeout(server, redactor):
    """Issue 3 (every request has a timeout): a server that drips its answer a
    byte at a time is abandoned after the timeout in total, not per read."""

    def drip(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", "100000")
        handler.end_headers()
        for _ in range(60):
            if server.release.wait(timeout=0.1):
                return
            handler.wfile.write(b" ")
            handler.wfile.flush()

    server.routes["/token"] = drip
    started = time.monotonic()

    with HttpClient(redactor, timeout=0.5) as http:
        reply = http.post_form(server.url + "/token", {"grant_type": "x"})

    assert time.monotonic() - started < 2.5
    assert reply.status is None
    assert "0.5 s" in reply.diagnosis


def test_connection_closed_without_answer_is_diagnosed(server, client):
    """A server that hangs up mid-request is reported, not raised."""

    def hang_up(handler: BaseHTTPRequestHandler) -> None:
        handler.close_connection = True

    server.routes["/token"] = hang_up

    reply = client.post_form(server.url + "/token", {"grant_type": "x"})

    assert reply.status is None
    assert reply.diagnosis is not None
    assert "closed the connection before a complete answer" in reply.diagnosis


class FailingAdapter(BaseAdapter):
    """Raises what requests raises for failures a test cannot provoke offline."""

    def __init__(self, failure: Callable[[requests.PreparedRequest], Exception]):
        super().__init__()
        self.failure = failure

    def send(self, request, **kwargs):
        raise self.failure(request)

    def close(self) -> None:
        pass


def unresolvable(request: requests.PreparedRequest) -> Exception:
    reason = urllib3.exceptions.NameResolutionError(
        "as.invalid", None, socket.gaierror(-2, "Name or service not known")
    )
    retry = urllib3.exceptions.MaxRetryError(None, request.url, reason)
    return requests.exceptions.ConnectionError(retry, request=request)


def bad_certificate(request: requests.PreparedRequest) -> Exception:
    cause = ssl.SSLCertVerificationError(1, "certificate verify failed: expired")
    retry = urllib3.exceptions.MaxRetryError(
        None, request.url, urllib3.exceptions.SSLError(cause)
    )
    return requests.exceptions.SSLError(retry, request=request)


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (unresolvable, "cannot resolve the host name 'as.invalid' (check the URL)"),
        (bad_certificate, "TLS handshake failed (certificate verify failed: expired)"),
    ],
)
def test_dns_and_tls_failures_are_diagnosed(redactor, failure, expected):
    """DNS and TLS failures name the host or the certificate problem."""
    with HttpClient(redactor, transport=FailingAdapter(failure)) as http:
        reply = http.get("https://as.invalid/.well-known/openid-configuration")

    assert reply.status is None
    assert reply.diagnosis is not None
    assert reply.diagnosis.startswith(
        "no answer from GET https://as.invalid/.well-known/openid-configuration: "
        + expected
    )


def test_unusable_url_is_diagnosed(client):
    """A nonsense endpoint URL (say, from discovery) is a diagnosis, not a crash."""
    reply = client.get("token-endpoint-without-scheme")

    assert reply.status is None
    assert reply.diagnosis is not None
    assert reply.diagnosis.startswith("cannot send GET token-endpoint-without-scheme")


# -------------------------------------------------------------------- transcript


def test_every_request_carries_the_timeout(redactor):
    """The configured timeout is passed with every request, and no redirects."""
    seen: list[tuple[object, object]] = []

    class Spy(BaseAdapter):
        def send(self, request, stream=False, timeout=None, **kwargs):
            seen.append((timeout, request.method))
            response = requests.Response()
            response.status_code = 200
            response.headers = CaseInsensitiveDict({"Content-Type": "text/plain"})
            response.raw = __import__("io").BytesIO(b"ok")
            response.request, response.url = request, request.url
            return response

        def close(self) -> None:
            pass

    with HttpClient(redactor, timeout=4.5, transport=Spy()) as http:
        http.get("http://as.test/a", expect_json=False)
        http.post_form("http://as.test/b", "grant_type=x", expect_json=False)

    assert seen == [(4.5, "GET"), (4.5, "POST")]


def test_secrets_never_reach_the_transcript(server, client, redactor):
    """Client secret, presented and issued tokens appear only as fingerprints."""
    issued = json.dumps(
        {"access_token": TOKEN, "refresh_token": REFRESH, "token_type": "Bearer"}
    )
    server.routes["/token"] = answer(200, issued, "application/json")
    server.routes["/echo"] = answer(
        400, f"bad token {REFRESH} and {TOKEN}", "text/plain", X_Echo=REFRESH
    )

    client.post_form(
        server.url + "/token",
        {"grant_type": "password", "password": "hunter2-password"},
        auth=("client-1", CLIENT_SECRET),
        step="mint",
    )
    client.post_form(
        server.url + "/echo?refresh_token=" + REFRESH,
        f"grant_type=refresh_token&refresh_token={REFRESH}",
        headers={"Authorization": f"Bearer {TOKEN}"},
        step="reuse",
    )

    text = transcript_text(client)
    for secret in (TOKEN, REFRESH, CLIENT_SECRET, "hunter2-password"):
        assert secret not in text
    second = client.transcript[1]
    assert second.request_headers["Authorization"] == f"Bearer {fingerprint(TOKEN)}"
    assert second.response_headers["X-Echo"] == fingerprint(REFRESH)
    assert second.url.endswith("?refresh_token=" + fingerprint(REFRESH))
    assert client.transcript[0].request_headers["Authorization"].startswith("Basic fp:")
    assert [e.step for e in client.transcript] == ["mint", "reuse"]
    learned = redactor.labels()
    assert learned[fingerprint(REFRESH)] == "refresh_token"
    assert learned[fingerprint(TOKEN)] == "access_token"


def escaped(text: str) -> str:
    """text with every character written as a JSON \\u escape."""
    return "".join(f"\\u{ord(c):04x}" for c in text)


def test_escaped_json_answers_are_redacted_as_decoded(server, client):
    """Issue 3 (Verdict and reports): a server that spells token members and
    values with JSON escapes leaves them in neither the stored body nor the
    diagnosis that quotes it, escaped or not."""
    issued = (
        f'{{"{escaped("access_token")}": "{escaped(TOKEN)}", '
        f'"refresh\\u005ftoken": "{escaped(REFRESH)}"}}'
    )
    server.routes["/token"] = answer(200, issued, "application/json")
    failed = f'{{"error": "server_error", "refresh\\u005ftoken": "{escaped(REFRESH)}"}}'
    server.routes["/down"] = answer(503, failed, "application/json")

    client.post_form(server.url + "/token", {"grant_type": "x"})
    reply = client.post_form(server.url + "/down", {"grant_type": "x"})

    text = transcript_text(client)
    for secret in (TOKEN, REFRESH):
        assert secret not in text
        assert escaped(secret[:10]).replace("\\", "") not in text.replace("\\", "")
    assert json.loads(client.transcript[0].response_body) == {
        "access_token": fingerprint(TOKEN),
        "refresh_token": fingerprint(REFRESH),
    }
    assert reply.diagnosis is not None
    assert f'"refresh_token": "{fingerprint(REFRESH)}"' in reply.diagnosis


def test_deeply_nested_answer_is_kept_as_redacted_text(server, client):
    """Issue 3 (Reaching a server): a body nested past what json can read is
    stored as redacted text; no RecursionError escapes."""
    # Deep enough for a RecursionError, short enough to be stored whole.
    nested = "[" * 1900 + f'"{REFRESH}"' + "]" * 1900
    client.redactor.add(REFRESH)
    server.routes["/deep"] = answer(200, nested, "application/json")

    reply = client.get(server.url + "/deep")

    assert reply.diagnosis is not None
    assert "nested too deeply" in reply.diagnosis
    assert REFRESH not in transcript_text(client)
    assert fingerprint(REFRESH) in client.transcript[0].response_body


def test_long_bodies_are_truncated_with_a_note(server, client):
    """A transcript keeps 4 KB of a body and says how much there was."""
    server.routes["/big"] = answer(200, "y" * 10_000, "text/plain")

    reply = client.get(server.url + "/big", expect_json=False)

    shown = client.transcript[0].response_body
    assert shown.startswith("y" * MAX_SHOWN_CHARS)
    assert "10000 characters in all" in shown
    assert len(shown) < MAX_SHOWN_CHARS + 100
    assert len(reply.text) == 10_000


def test_transcript_appends_are_thread_safe(server, client):
    """Concurrent requests each land in the transcript exactly once."""
    server.routes["/token"] = answer(200, "{}", "application/json")

    threads = [
        threading.Thread(
            target=client.post_form,
            args=(server.url + "/token", {"n": str(n)}),
            kwargs={"step": f"race {n}"},
        )
        for n in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(e.step for e in client.exchanges()) == [f"race {n}" for n in range(8)]


def test_given_session_is_used_and_left_open(server, redactor):
    """HttpClient sends through a caller's session and does not close it."""
    server.routes["/x"] = answer(200, "{}", "application/json")
    session = requests.Session()
    session.headers["X-Caller"] = "yes"

    with HttpClient(redactor, session=session) as http:
        http.get(server.url + "/x")

    assert http.transcript[0].request_headers["X-Caller"] == "yes"
    assert session.adapters  # still usable: close() was not called on it
    session.close()


# ------------------------------------------------------------------ WSGIAdapter


@pytest.fixture
def mock() -> mock_server.MockServer:
    return mock_server.MockServer()


@pytest.fixture
def wsgi_session(mock) -> Iterator[requests.Session]:
    session = requests.Session()
    session.mount("http://mock.test", WSGIAdapter(mock_server.create_app(mock)))
    yield session
    session.close()


def test_wsgi_adapter_serves_discovery(wsgi_session):
    """A GET through the adapter returns a complete requests.Response."""
    url = "http://mock.test/.well-known/oauth-authorization-server"

    response = wsgi_session.get(url, timeout=1)

    assert response.status_code == 200 and response.reason == "OK"
    assert response.headers["content-type"] == "application/json"
    assert response.url == url and response.request.method == "GET"
    assert response.json()["token_endpoint"] == "http://mock.test/token"


def test_wsgi_adapter_posts_json_and_forms(wsgi_session, mock):
    """POST bodies reach the app: a minted grant then rotates at /token."""
    minted = wsgi_session.post("http://mock.test/admin/grants", json={}, timeout=1)
    main = mock.credentials["main"]
    assert main.client_secret is not None

    rotated = wsgi_session.post(
        "http://mock.test/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": minted.json()["refresh_token"],
        },
        auth=(main.client_id, main.client_secret),
        timeout=1,
    )

    assert minted.status_code == 200 and minted.json()["refresh_token"]
    assert rotated.status_code == 200
    assert rotated.json()["refresh_token"] != minted.json()["refresh_token"]
    assert rotated.headers["Cache-Control"] == "no-store"


def test_wsgi_adapter_works_under_freezegun(wsgi_session):
    """The in-process server answers while time is frozen, as time scenarios need."""
    with freeze_time("2031-05-01 12:00:00"):
        response = wsgi_session.post("http://mock.test/admin/grants", json={})

    assert response.status_code == 200


def test_wsgi_adapter_is_thread_safe(wsgi_session):
    """Concurrent calls through one adapter each get their own answer."""
    results: list[str] = []

    def mint() -> None:
        response = wsgi_session.post("http://mock.test/admin/grants", json={})
        results.append(response.json()["refresh_token"])

    threads = [threading.Thread(target=mint) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(results)) == 8


def test_mock_flow_through_http_client_leaks_nothing(mock, redactor):
    """A mint, rotate and reuse against the mock keeps every secret out."""
    main = mock.credentials["main"]
    assert main.client_secret is not None
    adapter = WSGIAdapter(mock_server.create_app(mock))

    with HttpClient(redactor, transport=adapter) as http:
        minted = http.post_json("http://mock.test/admin/grants", {}).json_object()
        form = {"grant_type": "refresh_token", "refresh_token": minted["refresh_token"]}
        auth = (main.client_id, main.client_secret)
        rotated = http.post_form("http://mock.test/token", form, auth=auth)
        reused = http.post_form("http://mock.test/token", form, auth=auth)

    assert rotated.ok and reused.status == 400 and reused.diagnosis is None
    text = transcript_text(http)
    secrets = [main.client_secret, minted["refresh_token"], minted["access_token"]]
    secrets += [rotated.json["refresh_token"], rotated.json["access_token"]]
    assert not [s for s in secrets if s in text]
    assert fingerprint(minted["refresh_token"]) in text
