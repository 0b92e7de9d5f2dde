"""Strict reading of OAuth requests: form bodies and client authentication.

Everything here treats its input as hostile and answers with an OAuthError naming
what was wrong (RFC 6749 §3.2, §2.3).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote_plus

from flask import Request

from .errors import InvalidClient, InvalidRequest
from .records import Client
from .server import MockServer
from .tokens import same_secret

__all__ = ["read_form", "read_json_object", "authenticate_client", "ClientAuth"]

FORM_TYPE = "application/x-www-form-urlencoded"
SECRET_PARAMETERS = ("refresh_token", "client_secret", "code", "code_verifier")


def read_json_object(request: Request) -> dict | None:
    """The body as a JSON object, or None when it is anything else.

    For the admin and account APIs. Hostile nesting (RecursionError) and lone
    surrogates such as ``"\\ud800"`` are refused here: the second decodes fine but
    cannot be stored as UTF-8, so it would fail later inside a transaction.
    """
    try:
        body = json.loads(request.get_data(cache=True) or b"{}")
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeError, RecursionError):
        return None
    return body if isinstance(body, dict) else None


def read_form(request: Request) -> dict[str, str]:
    """The body's parameters; empty values count as omitted (RFC 6749 §3.2)."""
    if request.mimetype != FORM_TYPE:
        shown = request.mimetype or "none"
        raise InvalidRequest(
            f"The request body must be {FORM_TYPE}; the content type was {shown}.",
            reason="wrong_content_type",
        )
    exposed = [name for name in SECRET_PARAMETERS if name in request.args]
    if exposed:
        raise InvalidRequest(
            f"Parameter {exposed[0]} must be sent in the body, never in the URL.",
            reason="secret_in_url",
        )
    raw = request.get_data(cache=True)
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise InvalidRequest(
            "The request body is not UTF-8.", reason="not_utf8"
        ) from None
    except ValueError as exc:
        raise InvalidRequest(
            f"The request body is malformed: {exc}.", reason="malformed_body"
        ) from None

    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise InvalidRequest(
                f"Parameter {name} is repeated.", reason="repeated_parameter"
            )
        form[name] = value
    return {name: value for name, value in form.items() if value != ""}


@dataclass(frozen=True)
class ClientAuth:
    client: Client
    method: str


def _basic_credentials(header: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        client_id, secret = decoded.split(":", 1)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidClient(
            "The Authorization header is not valid Basic credentials.",
            reason="malformed_basic",
        ).with_challenge() from None
    # RFC 6749 §2.3.1: both parts are form-urlencoded before the Basic encoding.
    return unquote_plus(client_id), unquote_plus(secret)


def authenticate_client(
    server: MockServer, request: Request, form: dict[str, str]
) -> ClientAuth:
    header = request.headers.get("Authorization", "")
    basic = header[:6].lower() == "basic "
    body_id = form.get("client_id")
    body_secret = form.get("client_secret")

    if header and not basic:
        raise InvalidClient(
            "Only Basic client authentication is supported in the header.",
            reason="unsupported_auth_scheme",
        ).with_challenge()
    if basic and body_secret is not None:
        raise InvalidRequest(
            "The request uses more than one client authentication method.",
            reason="two_auth_methods",
        )

    if basic:
        client_id, secret = _basic_credentials(header)
        if body_id is not None and body_id != client_id:
            raise InvalidRequest(
                "client_id in the body differs from the Basic credentials.",
                reason="client_id_mismatch",
            )
        method = "client_secret_basic"
    elif body_id is not None:
        client_id, secret = body_id, body_secret
        method = "client_secret_post" if secret is not None else "none"
    else:
        raise InvalidClient(
            "Client authentication is required.", reason="no_client_auth"
        )

    client = server.client(client_id)
    failure = InvalidClient(
        "Client authentication failed.", reason="bad_client_credentials"
    )
    if basic:
        failure.with_challenge()
    if client is None:
        raise failure
    if client.secret_hash is None:
        if secret is not None:
            raise failure
        return ClientAuth(client, "none")
    if secret is None or not same_secret(secret, client.secret_hash):
        raise failure
    return ClientAuth(client, method)
