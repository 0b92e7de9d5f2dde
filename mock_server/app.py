"""The Flask application: views stay thin, errors are rendered in one place."""

from __future__ import annotations

import io
import logging
from typing import Any

from flask import Flask, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from . import snapshot
from .errors import InvalidClient, InvalidGrant, InvalidToken, OAuthError
from .server import SNAPSHOT_SETTINGS, MockServer

__all__ = ["create_app", "current_server", "error_text", "json_response"]

log = logging.getLogger(__name__)

# Token requests are small; anything larger is refused before it is read.
MAX_BODY_BYTES = 64 * 1024

DATABRICKS_INVALID = {
    "error": "invalid_request",
    "error_description": "Refresh token is invalid",
}


# RFC 6749 §5.2: error_description is limited to %x20-21 / %x23-5B / %x5D-7E.
DESCRIPTION_CHARS = frozenset(chr(c) for c in range(0x20, 0x7F)) - {'"', "\\"}


def error_text(text: str) -> str:
    """A description safe for an error response: messages may quote the request,
    and the request may hold quotes, backslashes or any Unicode."""
    return "".join(c if c in DESCRIPTION_CHARS else "?" for c in text)


def current_server() -> MockServer:
    return current_app.extensions["rotcert"]


def json_response(body: Any, status: int = 200, no_store: bool = True):
    response = jsonify(body)
    response.status_code = status
    if no_store:
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
    return response


def render_oauth_error(exc: OAuthError):
    """Turn any OAuthError into its RFC 6749 §5.2 / RFC 6750 §3 response."""
    server = current_server()
    status, body = exc.status, exc.body()
    if "error_description" in body:
        body["error_description"] = error_text(body["error_description"])
    client = g.get("client")

    # An unusable refresh token is answered in the shape the policy declares.
    if isinstance(exc, InvalidGrant) and g.get("grant_type") == "refresh_token":
        if "wrong_error_code" in server.broken_modes():
            status = 401
            body = {"error": "invalid_token", "error_description": exc.description}
        elif client and client.policy.invalid_refresh_token_error == "databricks":
            status, body = 400, dict(DATABRICKS_INVALID)

    response = json_response(body, status)
    if isinstance(exc, InvalidClient) and exc.challenge:
        response.headers["WWW-Authenticate"] = 'Basic realm="rotcert"'
    if isinstance(exc, InvalidToken):
        description = (exc.description or "").replace('"', "'")
        response.headers["WWW-Authenticate"] = (
            f'Bearer realm="rotcert", error="invalid_token", '
            f'error_description="{description}"'
        )

    event = g.get("event")
    if event is not None:
        event.update(
            error=body.get("error"),
            reason=exc.reason,
            family_id=event.get("family_id") or exc.family_id,
            generation=(
                event.get("generation")
                if event.get("generation") is not None
                else exc.generation
            ),
        )
    return response


def render_http_error(exc: HTTPException):
    """Werkzeug's own errors (404, 405, 413, ...) as JSON, never HTML."""
    code = "invalid_request" if exc.code and exc.code < 500 else "server_error"
    if exc.code == 404:
        code = "not_found"
    response = json_response(
        {"error": code, "error_description": exc.description or exc.name},
        exc.code or 500,
    )
    if exc.code == 405 and exc.valid_methods:
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    if g.get("event") is not None:
        g.event.update(error=code, reason=f"http_{exc.code}")
    return response


def render_unexpected(exc: Exception):
    # Reaching this is a bug in the mock; say so in JSON rather than crash.
    log.exception("unexpected error while handling %s %s", request.method, request.path)
    if g.get("event") is not None:
        g.event.update(error="server_error", reason="unexpected")
    return json_response(
        {"error": "server_error", "error_description": "internal error in the mock"},
        500,
    )


def start_request() -> None:
    server = current_server()
    if request.blueprint == "oauth":
        g.snapshot = snapshot.begin(server.store, SNAPSHOT_SETTINGS)
    # When the request arrived: an audit tells overlapping requests (a race)
    # from sequential ones (reuse) by this, not by a guessed time window.
    g.started = server.clock.now()


def end_request(_error: BaseException | None) -> None:
    token = g.pop("snapshot", None)
    if token is not None:
        snapshot.end(token)


def record_event(response):
    """One event per OAuth endpoint call, written after the status is known."""
    event = g.pop("event", None)
    if event is not None:
        event["status"] = response.status_code
        if "started" in g:
            event["started"] = round(g.started, 3)
        current_server().record(event)
    if "missing_no_store" in current_server().broken_modes() and request.path.endswith(
        "/token"
    ):
        response.headers.pop("Cache-Control", None)
        response.headers.pop("Pragma", None)
    return response


def _measured_bodies(wsgi_app):
    """Give a chunked body a length before Flask sees it.

    waitress de-chunks a body and sets its length, so werkzeug refuses one over
    MAX_BODY_BYTES with 413. granian hands it on chunked, and werkzeug then cut
    it at the limit silently: a parameter past the cut would simply vanish. Read
    at most one byte more than the limit here; over it, declare a length over the
    limit so that the usual 413 answers.
    """

    def app(environ, start_response):
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if chunked and not environ.get("CONTENT_LENGTH"):
            body = environ["wsgi.input"].read(MAX_BODY_BYTES + 1)
            environ["wsgi.input"] = io.BytesIO(
                b"" if len(body) > MAX_BODY_BYTES else body
            )
            environ["CONTENT_LENGTH"] = str(len(body))
            environ["wsgi.input_terminated"] = False
            del environ["HTTP_TRANSFER_ENCODING"]
        return wsgi_app(environ, start_response)

    return app


def create_app(server: MockServer | None = None) -> Flask:
    from .account_views import accounts
    from .admin_views import admin
    from .oauth_views import oauth

    app = Flask("rotcert_mock")
    app.extensions["rotcert"] = server or MockServer()
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.wsgi_app = _measured_bodies(app.wsgi_app)  # type: ignore[method-assign]
    app.json.sort_keys = False  # type: ignore[attr-defined]

    app.register_blueprint(oauth)
    app.register_blueprint(accounts)
    app.register_blueprint(admin)
    app.register_error_handler(OAuthError, render_oauth_error)
    app.register_error_handler(HTTPException, render_http_error)
    app.register_error_handler(Exception, render_unexpected)
    app.before_request(start_request)
    app.after_request(record_event)
    app.teardown_request(end_request)
    return app
