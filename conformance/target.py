"""The server under test: where it is, who we are to it, and what it declares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import requests

from mock_server import (
    DATABRICKS_EXAMPLE,
    AppIntegration,
    MockServer,
    PolicyError,
    create_app,
    load_integration,
    load_policy_file,
    load_preset,
)
from mock_server.policy import Policy

from .http import HttpClient, WSGIAdapter
from .redact import Redactor

__all__ = [
    "ClientCredentials",
    "Endpoints",
    "ServerTarget",
    "TargetError",
    "declared_integration",
    "discover",
    "embedded_target",
]

EMBEDDED_URL = "http://rotcert.embedded"


class TargetError(Exception):
    """The target cannot be reached or configured; the message says what to fix."""


@dataclass(frozen=True)
class ClientCredentials:
    client_id: str
    client_secret: str | None
    auth: str = "basic"  # basic | post | none

    def form_and_auth(self) -> tuple[dict[str, str], tuple[str, str] | None]:
        """Body parameters and Basic credentials for one token request."""
        if self.auth == "basic" and self.client_secret is not None:
            return {}, (self.client_id, self.client_secret)
        form = {"client_id": self.client_id}
        if self.auth == "post" and self.client_secret is not None:
            form["client_secret"] = self.client_secret
        return form, None


@dataclass(frozen=True)
class Endpoints:
    token: str
    authorization: str | None = None
    revocation: str | None = None
    introspection: str | None = None
    resource: str | None = None
    admin: str | None = None


@dataclass
class ServerTarget:
    name: str
    endpoints: Endpoints
    client: ClientCredentials
    second_client: ClientCredentials | None
    integration: AppIntegration
    session: requests.Session
    timeout: float = 10.0
    embedded: MockServer | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def policy(self) -> Policy:
        return self.integration.policy

    @property
    def scopes(self) -> list[str]:
        return list(self.integration.scopes)

    def http(self, redactor: Redactor) -> HttpClient:
        for cred in (self.client, self.second_client):
            if cred is not None:
                redactor.add(cred.client_secret, "client_secret")
        return HttpClient(redactor, timeout=self.timeout, session=self.session)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "token_endpoint": self.endpoints.token,
            "client_id": self.client.client_id,
            "client_auth": self.client.auth,
            "declared_policy": self.policy.to_json(),
            "embedded": self.embedded is not None,
        }


def declared_integration(policy_file: str | None, preset: str | None) -> AppIntegration:
    """The policy the target claims to implement (default: Databricks' example)."""
    if policy_file and preset:
        raise TargetError("Give --rotcert-policy or --rotcert-preset, not both.")
    try:
        if policy_file:
            return load_policy_file(policy_file)
        if preset:
            return load_preset(preset)
    except PolicyError as exc:
        raise TargetError(str(exc)) from None
    return load_integration(DATABRICKS_EXAMPLE)


def embedded_target(
    integration: AppIntegration, broken_modes: list[str], timeout: float
) -> ServerTarget:
    """The built-in mock, served in-process so freezegun can move its clock."""
    server = MockServer(integration, issuer=EMBEDDED_URL)
    if broken_modes:
        try:
            server.set_broken_modes(broken_modes)
        except ValueError as exc:
            raise TargetError(str(exc)) from None
    session = requests.Session()
    session.mount(EMBEDDED_URL, WSGIAdapter(create_app(server)))
    main, second = server.credentials["main"], server.credentials["second"]
    return ServerTarget(
        name="embedded rotcert mock server",
        endpoints=Endpoints(
            token=EMBEDDED_URL + "/token",
            authorization=EMBEDDED_URL + "/authorize",
            revocation=EMBEDDED_URL + "/revoke",
            introspection=EMBEDDED_URL + "/introspect",
            resource=EMBEDDED_URL + "/resource",
            admin=EMBEDDED_URL + "/admin",
        ),
        client=ClientCredentials(
            main.client_id,
            main.client_secret,
            "basic" if main.client_secret else "none",
        ),
        second_client=ClientCredentials(second.client_id, second.client_secret),
        integration=integration,
        session=session,
        timeout=timeout,
        embedded=server,
    )


def _fetch_json(session: requests.Session, url: str, timeout: float) -> dict | None:
    try:
        reply = session.get(url, timeout=timeout, allow_redirects=False)
    except requests.RequestException:
        return None
    if reply.status_code != 200:
        return None
    try:
        body = reply.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def discover(session: requests.Session, issuer: str, timeout: float) -> dict[str, Any]:
    """Authorization server metadata (RFC 8414 and OIDC, appended or inserted)."""
    issuer = issuer.rstrip("/")
    scheme, _, rest = issuer.partition("://")
    host, slash, path = rest.partition("/")
    candidates = [
        issuer + "/.well-known/oauth-authorization-server",
        issuer + "/.well-known/openid-configuration",
    ]
    if slash:
        candidates.append(
            f"{scheme}://{host}/.well-known/oauth-authorization-server/{path}"
        )
    for url in candidates:
        metadata = _fetch_json(session, url, timeout)
        if metadata and "token_endpoint" in metadata:
            return metadata
    raise TargetError(
        f"No authorization server metadata with a token_endpoint at {issuer} (tried "
        + ", ".join(candidates)
        + "). Give --rotcert-token-endpoint and the other endpoints explicitly."
    )


def admin_clients(
    session: requests.Session, admin: str, timeout: float
) -> dict[str, ClientCredentials]:
    """A rotcert mock's clients, by role, read from its admin API."""
    body = _fetch_json(session, admin + "/clients", timeout) or {}
    found = {}
    for entry in body.get("clients", []):
        role = entry.get("role")
        if role:
            secret = entry.get("client_secret")
            found[role] = ClientCredentials(
                entry["client_id"], secret, "basic" if secret else "none"
            )
    return found
