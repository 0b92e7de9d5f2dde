"""Helpers for the HTTP tests of the mock server: requests, clients, secret scans."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote_plus

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from mock_server import DATABRICKS_EXAMPLE, MockServer, create_app, load_integration
from mock_server.records import Client
from mock_server.rotation import TokenSet
from mock_server.tokens import token_hash

FORM = "application/x-www-form-urlencoded"


def make_server(policy: dict[str, Any] | None = None, **kwargs: Any) -> MockServer:
    """A memory-store mock whose clients carry the Databricks example policy with
    ``policy``'s fields laid over it."""
    document = dict(DATABRICKS_EXAMPLE)
    document["token_access_policy"] = {
        **DATABRICKS_EXAMPLE["token_access_policy"],
        **(policy or {}),
    }
    return MockServer(load_integration(document), **kwargs)


def http_client(server: MockServer) -> FlaskClient:
    return create_app(server).test_client()


def basic(client_id: str, secret: str) -> dict[str, str]:
    """RFC 6749 §2.3.1: form-urlencode each part, then Basic-encode the pair."""
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}"
    return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


def creds(server: MockServer, role: str = "main") -> tuple[str, str | None]:
    made = server.credentials[role]
    return made.client_id, made.client_secret


def post_form(
    http: FlaskClient,
    path: str,
    params: dict[str, str] | list[tuple[str, str]],
    *,
    auth: tuple[str, str | None] | None = None,
    method: str = "basic",
    headers: dict[str, str] | None = None,
) -> TestResponse:
    """POST a form, authenticating as ``auth`` with ``method``
    (basic | post | none)."""
    pairs = list(params.items()) if isinstance(params, dict) else list(params)
    sent = dict(headers or {})
    if auth is not None:
        client_id, secret = auth
        if method == "basic":
            assert secret is not None
            sent.update(basic(client_id, secret))
        elif method == "post":
            pairs += [("client_id", client_id), ("client_secret", secret or "")]
        elif method == "none":
            pairs.append(("client_id", client_id))
        else:
            raise ValueError(f"unknown auth method {method!r}")
    body = "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in pairs)
    return http.post(path, data=body, content_type=FORM, headers=sent)


def refresh(
    http: FlaskClient,
    server: MockServer,
    token: str,
    role: str = "main",
    *,
    method: str | None = None,
    path: str = "/token",
    **extra: str,
) -> TestResponse:
    """REFRESH(token, role) from standards.md §1."""
    if method is None:
        method = "none" if role == "public" else "basic"
    params = {"grant_type": "refresh_token", "refresh_token": token, **extra}
    return post_form(http, path, params, auth=creds(server, role), method=method)


def mint(server: MockServer, role: str = "main", scope: str | None = None) -> TokenSet:
    """A fresh family for the client in ``role``, without a browser."""
    client = server.client(server.credentials[role].client_id)
    assert client is not None
    scopes = scope.split() if scope is not None else list(client.scopes)
    return server.authority.start_grant(client, server.user, scopes)


def add_client(
    server: MockServer, client_id: str, secret: str | None, **fields: Any
) -> Client:
    """Register a client with a chosen id and secret (ids with ':' '+' '%')."""
    client = Client(
        client_id=client_id,
        secret_hash=token_hash(secret) if secret is not None else None,
        scopes=["all-apis", "offline_access"],
        policy_json=dict(DATABRICKS_EXAMPLE["token_access_policy"]),
        **fields,
    )
    server.save_client(client)
    return client


def error_of(response: TestResponse) -> str | None:
    body = response.get_json(silent=True)
    return body.get("error") if isinstance(body, dict) else None


def assert_error(response: TestResponse, status: int | Iterable[int], code: str):
    """ERR(status, code) from standards.md §1, plus a JSON content type."""
    allowed = {status} if isinstance(status, int) else set(status)
    assert response.status_code in allowed, (response.status_code, response.data)
    assert response.mimetype == "application/json", response.mimetype
    assert error_of(response) == code, response.get_json(silent=True)
    if response.status_code == 401:
        # RFC 9110 §11.6.1: every 401 carries a challenge.
        assert response.headers.get("WWW-Authenticate"), "401 without a challenge"


def assert_ok(response: TestResponse) -> dict[str, Any]:
    """OK from standards.md §1: 200, JSON, access_token, token_type, no-store."""
    assert response.status_code == 200, (response.status_code, response.data)
    body = response.get_json()
    assert isinstance(body, dict)
    assert isinstance(body["access_token"], str) and body["access_token"]
    assert body["token_type"].lower() == "bearer"
    assert "no-store" in response.headers.get("Cache-Control", "")
    return body


def token_values(body: Any) -> set[str]:
    """Every token or secret value in a response body or credentials object."""
    found: set[str] = set()
    if isinstance(body, dict):
        for name, value in body.items():
            if name in {
                "access_token",
                "refresh_token",
                "client_secret",
                "code",
                "id_token",
            } and isinstance(value, str):
                found.add(value)
            else:
                found |= token_values(value)
    elif isinstance(body, list):
        for item in body:
            found |= token_values(item)
    return found


def assert_no_secrets(text: str, secrets: Iterable[str]) -> None:
    """No secret value appears in ``text``, not even in JSON-escaped form."""
    for secret in secrets:
        assert secret, "an empty secret would match anything"
        assert secret not in text, f"a secret leaked: {secret[:4]}..."
        assert json.dumps(secret)[1:-1] not in text
