"""The suite's HTTP client: every call answered, diagnosed and kept in a transcript.

A target's answers are judged by scenarios, but before that an answer has to be an
answer: HttpClient turns transport failures, redirects, HTML error pages, broken
JSON and server errors into a one-sentence diagnosis instead of an exception, and
records every exchange, redacted, for the report.
"""

from __future__ import annotations

import http.client
import io
import json
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3.exceptions
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from werkzeug.test import Client as WerkzeugClient

from .redact import SECRET_FIELDS, Redactor

# How far past --rotcert-timeout a slow answer may run before it is abandoned.
DEADLINE_SLACK_SECONDS = 0.5

__all__ = [
    "MAX_SHOWN_CHARS",
    "Exchange",
    "HttpClient",
    "Reply",
    "ServerAnswerError",
    "WSGIAdapter",
    "describe_failure",
    "diagnose",
    "json_kind",
]

# How much of a body an Exchange keeps, and how much of an answer is read at all.
MAX_SHOWN_CHARS = 4096
MAX_READ_BYTES = 1024 * 1024
SNIPPET_CHARS = 120

# Members of a token response that are secrets the redactor must learn.
ISSUED_FIELDS = ("access_token", "refresh_token", "id_token")

FORM_TYPE = "application/x-www-form-urlencoded"

# freezegun replaces time functions it finds as module attributes; one kept in a
# dict escapes that, so elapsed times stay real while the scenario's time is frozen.
_REAL = {"perf_counter": time.perf_counter}


def _user_agent() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"rotcert/{version('rotcert')}"
    except PackageNotFoundError:
        return "rotcert"


USER_AGENT = _user_agent()


class ServerAnswerError(AssertionError):
    """The target's answer could not be used; the message says what it was."""


@dataclass
class Exchange:
    """One request and its answer, as the report shows them: already redacted."""

    step: str
    method: str
    url: str
    request_headers: dict[str, str]
    request_body: str
    status: int | None
    response_headers: dict[str, str]
    response_body: str
    elapsed_ms: float
    diagnosis: str | None = None

    @property
    def request_line(self) -> str:
        return f"{self.method} {self.url}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Exchange:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class Reply:
    """What the target answered, unredacted, for the scenario to judge.

    diagnosis is None when the answer is usable: a JSON object (or, with
    expect_json=False, anything that is not a transport failure, a redirect or a
    server error).
    """

    status: int | None
    headers: CaseInsensitiveDict[str]
    text: str
    json: Any = None
    diagnosis: str | None = None
    method: str = ""
    url: str = ""
    elapsed_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == 200 and isinstance(self.json, dict)

    @property
    def error(self) -> str | None:
        """The RFC 6749 §5.2 "error" member, when the answer is a JSON object."""
        if isinstance(self.json, dict) and isinstance(self.json.get("error"), str):
            return self.json["error"]
        return None

    @property
    def error_description(self) -> str | None:
        if isinstance(self.json, dict):
            value = self.json.get("error_description")
            return value if isinstance(value, str) else None
        return None

    def explain(self) -> str:
        """The diagnosis as a sentence that names the request."""
        diagnosis = self.diagnosis or "did not answer with a JSON object"
        if diagnosis.startswith(("no answer from", "cannot send")):
            return diagnosis
        return f"{self.method} {self.url} {diagnosis}"

    def json_object(self) -> dict[str, Any]:
        """The answer's JSON object, or ServerAnswerError with the diagnosis."""
        if isinstance(self.json, dict):
            return self.json
        raise ServerAnswerError(self.explain())


class HttpClient:
    """Sends the suite's requests; never raises for what the target does.

    Pass session= to reuse a configured requests.Session, or transport= to mount
    an adapter (such as WSGIAdapter) for http:// and https:// on the session.
    """

    def __init__(
        self,
        redactor: Redactor,
        timeout: float = 10.0,
        session: requests.Session | None = None,
        transport: BaseAdapter | None = None,
    ) -> None:
        self.redactor = redactor
        self.timeout = timeout
        self._owns_session = session is None
        self.session = session if session is not None else requests.Session()
        if transport is not None:
            self.session.mount("http://", transport)
            self.session.mount("https://", transport)
        self.transcript: list[Exchange] = []
        self._lock = threading.Lock()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_session:
            self.session.close()

    def exchanges(self) -> list[Exchange]:
        """A copy of the transcript, safe to read while other threads send."""
        with self._lock:
            return list(self.transcript)

    def transcript_json(self) -> list[dict[str, Any]]:
        return [exchange.to_json() for exchange in self.exchanges()]

    # ---------------------------------------------------------------- requests

    def post_form(
        self,
        url: str,
        data: Mapping[str, Any] | list[tuple[str, str]] | str | bytes,
        *,
        auth: tuple[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        step: str = "",
        expect_json: bool = True,
    ) -> Reply:
        """POST an application/x-www-form-urlencoded body (RFC 6749 §4.1.3, §6)."""
        merged = dict(headers or {})
        if isinstance(data, (str, bytes)) and not _has(merged, "Content-Type"):
            merged["Content-Type"] = FORM_TYPE
        return self.request(
            "POST",
            url,
            data=data,
            auth=auth,
            headers=merged,
            step=step,
            expect_json=expect_json,
        )

    def post_json(
        self,
        url: str,
        body: Any,
        *,
        headers: Mapping[str, str] | None = None,
        step: str = "",
        expect_json: bool = True,
    ) -> Reply:
        """POST a JSON body, as the mock's admin API and account API take."""
        return self.request(
            "POST",
            url,
            json=body,
            headers=headers,
            step=step,
            expect_json=expect_json,
        )

    def get(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        step: str = "",
        expect_json: bool = True,
    ) -> Reply:
        return self.request(
            "GET", url, headers=headers, step=step, expect_json=expect_json
        )

    def request(
        self,
        method: str,
        url: str,
        *,
        data: Any = None,
        json: Any = None,
        auth: tuple[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        step: str = "",
        expect_json: bool = True,
        timeout: float | None = None,
    ) -> Reply:
        """Send one request; transport failures come back as a diagnosed Reply.

        data is a form (mapping, pairs) or a raw body; json a JSON-ready body.
        """
        method = method.upper()
        timeout = self.timeout if timeout is None else timeout
        self._learn_request(data, json, auth)

        merged = {"Accept": "application/json", "User-Agent": USER_AGENT}
        merged.update(headers or {})
        try:
            prepared = self.session.prepare_request(
                requests.Request(
                    method, url, headers=merged, data=data, json=json, auth=auth
                )
            )
        except Exception as exc:  # a bad URL from discovery is the target's fault
            diagnosis = f"cannot send {method} {self._redact(url)}: {exc}"
            return self._failed(step, method, url, merged, "", diagnosis, 0.0)

        started = _REAL["perf_counter"]()
        try:
            response, body, cut = self._send(prepared, timeout)
        except Exception as exc:
            elapsed = (_REAL["perf_counter"]() - started) * 1000
            diagnosis = self._redact(describe_failure(method, url, exc, timeout))
            return self._failed(
                step,
                method,
                url,
                dict(prepared.headers),
                _text(prepared.body),
                diagnosis,
                elapsed,
            )
        elapsed = (_REAL["perf_counter"]() - started) * 1000

        return self._answered(
            step, method, url, prepared, response, body, cut, elapsed, expect_json
        )

    # ----------------------------------------------------------------- private

    def _send(
        self, prepared: requests.PreparedRequest, timeout: float
    ) -> tuple[requests.Response, bytes, bool]:
        """Send and read the whole answer within ``timeout`` seconds in total.

        requests' own timeout bounds each read, not the answer: a server that
        drips one byte a second would hold a scenario for as long as it likes.
        """
        settings = self.session.merge_environment_settings(
            prepared.url, {}, None, None, None
        )
        settings.pop("stream", None)
        box: dict[str, Any] = {}
        done = threading.Event()

        def exchange() -> None:
            try:
                response = self.session.send(
                    prepared,
                    timeout=timeout,
                    allow_redirects=False,
                    stream=True,
                    **settings,
                )
                box["response"] = response
                try:
                    box["answer"] = (response, *_read_capped(response))
                finally:
                    response.close()
            except BaseException as exc:  # handed to the caller below
                box["error"] = exc
            finally:
                done.set()

        worker = threading.Thread(target=exchange, daemon=True)
        worker.start()
        if not done.wait(timeout + DEADLINE_SLACK_SECONDS):
            # Leave the reader to finish on its own (it is a daemon): closing the
            # response here would wait on the very read that is too slow.
            raise requests.exceptions.ReadTimeout(
                f"the whole answer did not arrive within {timeout:g} s"
            )
        if "error" in box:
            raise box["error"]
        return box["answer"]

    def _answered(
        self,
        step: str,
        method: str,
        url: str,
        prepared: requests.PreparedRequest,
        response: requests.Response,
        body: bytes,
        cut: bool,
        elapsed: float,
        expect_json: bool,
    ) -> Reply:
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict(response.headers)
        text = _decode(body, response.encoding)
        parsed, parse_error = _parse_json(text)
        if isinstance(parsed, dict):
            for name in ISSUED_FIELDS:
                if isinstance(parsed.get(name), str):
                    self.redactor.add(parsed[name], name)

        # Parsed before redaction: escapes (refresh\u005ftoken) hide a token from
        # a pass over the raw text, and the diagnosis quotes this text too.
        shown = self.redactor.redact_body(text)
        diagnosis = diagnose(
            method,
            response.status_code,
            response.reason or "",
            headers,
            shown,
            len(body),
            parsed,
            parse_error,
            cut=cut,
            expect_json=expect_json,
        )
        if diagnosis is not None:
            diagnosis = self._redact(diagnosis)

        self._record(
            Exchange(
                step=step,
                method=method,
                url=self._redact(url),
                request_headers=self.redactor.redact_headers(dict(prepared.headers)),
                request_body=_shown(self.redactor.redact_body(_text(prepared.body))),
                status=response.status_code,
                response_headers=self.redactor.redact_headers(dict(headers)),
                response_body=_shown(shown),
                elapsed_ms=round(elapsed, 1),
                diagnosis=diagnosis,
            )
        )
        return Reply(
            status=response.status_code,
            headers=headers,
            text=text,
            json=parsed,
            diagnosis=diagnosis,
            method=method,
            url=self._redact(url),
            elapsed_ms=round(elapsed, 1),
        )

    def _failed(
        self,
        step: str,
        method: str,
        url: str,
        request_headers: dict[str, str],
        request_body: str,
        diagnosis: str,
        elapsed: float,
    ) -> Reply:
        self._record(
            Exchange(
                step=step,
                method=method,
                url=self._redact(url),
                request_headers=self.redactor.redact_headers(request_headers),
                request_body=_shown(self.redactor.redact_body(request_body)),
                status=None,
                response_headers={},
                response_body="",
                elapsed_ms=round(elapsed, 1),
                diagnosis=diagnosis,
            )
        )
        return Reply(
            status=None,
            headers=CaseInsensitiveDict(),
            text="",
            diagnosis=diagnosis,
            method=method,
            url=self._redact(url),
            elapsed_ms=round(elapsed, 1),
        )

    def _record(self, exchange: Exchange) -> None:
        with self._lock:
            self.transcript.append(exchange)

    def _redact(self, text: str) -> str:
        return self.redactor.redact(text)

    def _learn_request(
        self, data: Any, json_body: Any, auth: tuple[str, str] | None
    ) -> None:
        if auth is not None:
            self.redactor.add(auth[1], "client_secret")
        pairs: list[tuple[Any, Any]] = []
        if isinstance(data, Mapping):
            pairs.extend(data.items())
        elif isinstance(data, list):
            pairs.extend(p for p in data if isinstance(p, tuple) and len(p) == 2)
        if isinstance(json_body, Mapping):
            pairs.extend(json_body.items())
        for name, value in pairs:
            if name in SECRET_FIELDS and isinstance(value, str):
                self.redactor.add(value, name)


# ------------------------------------------------------------------ diagnoses


def diagnose(
    method: str,
    status: int,
    reason: str,
    headers: Mapping[str, str],
    text: str,
    size: int,
    parsed: Any,
    parse_error: str | None,
    *,
    cut: bool = False,
    expect_json: bool = True,
) -> str | None:
    """Why an answer cannot be used as an OAuth answer, or None when it can.

    text must already be redacted: the diagnosis quotes it.
    """
    if 300 <= status < 400:
        location = headers.get("Location")
        if not location:
            return f"redirected ({status}) without a Location header"
        if method == "POST":
            return (
                f"redirected ({status}) to {location}; "
                "a token endpoint must answer directly"
            )
        return (
            f"redirected ({status}) to {location}; "
            "rotcert does not follow redirects, give it the final URL"
        )

    if status >= 500:
        head = f"server error {status} {reason}".rstrip()
        return f"{head}: {_snippet(text)}" if text.strip() else f"{head}, empty body"

    if cut:
        return (
            f"answered more than {MAX_READ_BYTES} bytes; rotcert read no further "
            "(an OAuth answer is a small JSON object)"
        )
    if not expect_json:
        return None

    content_type = headers.get("Content-Type", "")
    kind = content_type.split(";")[0].strip() or "a body without Content-Type"
    hint = " (is the endpoint URL right?)" if status in (404, 405) else ""
    if not text.strip():
        return (
            f"answered {status} with an empty body where a JSON object was "
            f"expected{hint}"
        )
    if parse_error is not None:
        if "html" in content_type.lower() or text.lstrip().startswith("<"):
            return (
                f"answered {kind} ({size} bytes) where JSON was expected: "
                f"{_snippet(text)}{hint}"
            )
        return (
            f"answered {kind} ({size} bytes) that is not valid JSON "
            f"({parse_error}): {_snippet(text)}{hint}"
        )
    if not isinstance(parsed, dict):
        return (
            f"answered JSON {json_kind(parsed)} where a JSON object was expected: "
            f"{_snippet(text)}"
        )
    return None


def describe_failure(method: str, url: str, exc: BaseException, timeout: float) -> str:
    """A transport failure as a sentence a client vendor can act on."""
    where = f"no answer from {method} {url}"
    causes = list(_causes(exc))

    def seen(*kinds: type[BaseException]) -> bool:
        return any(isinstance(c, kinds) for c in causes)

    if seen(
        requests.exceptions.InvalidURL,
        requests.exceptions.MissingSchema,
        requests.exceptions.InvalidSchema,
        urllib3.exceptions.LocationParseError,
    ):
        return f"cannot send {method} {url}: the URL is not usable ({exc})"
    if seen(ConnectionRefusedError):
        return f"{where}: connection refused (is the server running?)"
    if seen(socket.gaierror, urllib3.exceptions.NameResolutionError):
        host = urlsplit(url).hostname or url
        return f"{where}: cannot resolve the host name {host!r} (check the URL)"
    if seen(ssl.SSLError, requests.exceptions.SSLError):
        return (
            f"{where}: TLS handshake failed ({_last_words(causes)}); check the "
            "certificate, and that the URL's scheme matches the server"
        )
    if seen(
        ConnectionResetError,
        ConnectionAbortedError,
        BrokenPipeError,
        http.client.RemoteDisconnected,
        http.client.IncompleteRead,
        requests.exceptions.ChunkedEncodingError,
    ):
        return f"{where}: the server closed the connection before a complete answer"
    if seen(
        requests.exceptions.ConnectTimeout, urllib3.exceptions.ConnectTimeoutError
    ) and not seen(urllib3.exceptions.NewConnectionError):
        return f"{where}: could not connect within {timeout:g} s (timed out)"
    if seen(requests.exceptions.Timeout, TimeoutError, urllib3.exceptions.TimeoutError):
        return (
            f"{where}: timed out after {timeout:g} s (the connection was made but "
            "no answer came)"
        )
    if seen(requests.exceptions.TooManyRedirects):
        return f"{where}: too many redirects"
    if seen(requests.exceptions.ContentDecodingError):
        return f"{where}: the answer could not be decoded ({_last_words(causes)})"
    return f"{where}: {type(exc).__name__}: {exc}"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """exc and everything it wraps: requests and urllib3 nest failures deeply."""
    pending: deque[BaseException] = deque([exc])
    seen: set[int] = set()
    while pending and len(seen) < 50:
        current = pending.popleft()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [
            current.__cause__,
            current.__context__,
            getattr(current, "reason", None),
        ]
        linked.extend(current.args)
        pending.extend(c for c in linked if isinstance(c, BaseException))


def _last_words(causes: list[BaseException]) -> str:
    """The innermost failure's own words; the outer ones only wrap it."""
    innermost = causes[-1]
    return str(innermost) or type(innermost).__name__


def json_kind(value: Any) -> str:
    """What a parsed JSON value is, in JSON's words, to name it in a message."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return "number"


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    # No control characters from the server reach a terminal or a report.
    flat = "".join(c if c.isprintable() else repr(c)[1:-1] for c in flat)
    if len(flat) > SNIPPET_CHARS:
        flat = flat[:SNIPPET_CHARS] + "…"
    return f"'{flat}'"


def _shown(text: str) -> str:
    if len(text) <= MAX_SHOWN_CHARS:
        return text
    return (
        text[:MAX_SHOWN_CHARS]
        + f"\n… [rotcert truncated this body: {len(text)} characters in all, "
        + f"the first {MAX_SHOWN_CHARS} shown]"
    )


def _has(headers: Mapping[str, str], name: str) -> bool:
    return any(key.lower() == name.lower() for key in headers)


def _text(body: Any) -> str:
    if body is None:
        return ""
    if isinstance(body, bytes):
        return body.decode("utf-8", "replace")
    if isinstance(body, str):
        return body
    return f"<{type(body).__name__} body>"


def _decode(body: bytes, encoding: str | None) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return body.decode(encoding or "latin-1", "replace")
    except LookupError:
        return body.decode("latin-1", "replace")


def _parse_json(text: str) -> tuple[Any, str | None]:
    if not text.strip():
        return None, "empty body"
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    except RecursionError:
        return None, "nested too deeply to read"
    except ValueError as exc:
        return None, str(exc) or type(exc).__name__


def _read_capped(response: requests.Response) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(64 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_READ_BYTES:
            return b"".join(chunks)[:MAX_READ_BYTES], True
    return b"".join(chunks), False


# ---------------------------------------------------------------- in-process


class WSGIAdapter(BaseAdapter):
    """Serves requests from a WSGI app in-process, without sockets.

    Mount it on a session (or pass it as HttpClient's transport) so the suite can
    drive the embedded mock server under freezegun. Each call uses its own
    werkzeug test client, so the adapter can be shared between threads.
    """

    def __init__(self, app: Any) -> None:
        super().__init__()
        self.app = app

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        parts = urlsplit(request.url or "")
        body = request.body
        if isinstance(body, str):
            body = body.encode("utf-8")
        elif body is not None and not isinstance(body, bytes):
            body = b"".join(
                c if isinstance(c, bytes) else str(c).encode() for c in body
            )

        client = WerkzeugClient(self.app, use_cookies=False)
        try:
            answer = client.open(
                path=parts.path or "/",
                base_url=f"{parts.scheme}://{parts.netloc}",
                query_string=parts.query,
                method=request.method or "GET",
                headers=list(request.headers.items()),
                data=body or b"",
                buffered=True,
            )
            data = answer.get_data()
        except Exception as exc:
            raise requests.exceptions.ConnectionError(
                f"the in-process app failed: {type(exc).__name__}: {exc}",
                request=request,
            ) from exc

        response = requests.Response()
        response.status_code = answer.status_code
        response.reason = answer.status.partition(" ")[2]
        response.headers = CaseInsensitiveDict()
        for name, value in answer.headers.items():
            if name in response.headers:
                response.headers[name] += ", " + value
            else:
                response.headers[name] = value
        response.encoding = requests.utils.get_encoding_from_headers(response.headers)
        response.raw = io.BytesIO(data)
        response.url = request.url or ""
        response.request = request
        response.connection = self
        answer.close()
        return response

    def close(self) -> None:
        """Nothing to release: no connections are pooled."""
