"""The server under test: where it is, who we are to it, and what it declares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

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

from .http import HttpClient, WSGIAdapter, json_kind
from .redact import Redactor

__all__ = [
    "ClientCredentials",
    "Endpoints",
    "ServerTarget",
    "TargetError",
    "declared_integration",
    "discover",
    "embedded_target",
    "fetch_json",
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


def fetch_json(
    session: requests.Session, url: str, timeout: float
) -> tuple[dict[str, Any] | None, str]:
    """GET a JSON object: the object, or None and why not, as a sentence.

    The target answers through HttpClient, so its whole answer must arrive within
    the timeout and within the size cap: a server that drips its metadata or sends
    gigabytes of it cannot hang the run or exhaust its memory.
    """
    with HttpClient(Redactor(), timeout=timeout, session=session) as http:
        reply = http.get(url, step="discovery")

    if reply.diagnosis is not None:
        return None, reply.explain()
    if reply.status != 200:
        return None, f"GET {reply.url} answered HTTP {reply.status}"
    return reply.json, ""


# Metadata members that become endpoints (RFC 8414 §2, and the mock's own).
METADATA_ENDPOINTS = (
    "token_endpoint",
    "authorization_endpoint",
    "revocation_endpoint",
    "introspection_endpoint",
    "rotcert_resource_endpoint",
    "rotcert_admin_endpoint",
)


def _check_metadata(metadata: dict[str, Any], url: str) -> None:
    """Every endpoint the metadata names is an http(s) URL, or TargetError."""
    for name in METADATA_ENDPOINTS:
        value = metadata.get(name)
        if value is None and name != "token_endpoint":
            continue

        problem = _url_problem(value)
        if problem:
            raise TargetError(
                f"The metadata at {url} gives {name} as {problem}; it must be an "
                "http:// or https:// URL. Give the endpoints explicitly "
                "(--rotcert-token-endpoint and the others) instead of --rotcert-issuer."
            )


def _url_problem(value: Any) -> str | None:
    """None for a usable absolute http(s) URL; else what the value is instead."""
    if not isinstance(value, str):
        return f"a JSON {json_kind(value)}"
    shown = repr(value[:80] + ("…" if len(value) > 80 else ""))
    try:
        parts = urlsplit(value)
        usable = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        usable = False
    return None if usable else shown


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
    tried = []
    for url in candidates:
        metadata, why = fetch_json(session, url, timeout)
        if metadata is not None and "token_endpoint" in metadata:
            _check_metadata(metadata, url)
            return metadata
        tried.append(why or f"{url} names no token_endpoint")

    if all(why.startswith("no answer from") for why in tried):
        # Not one answer: the cause is the connection, which explicit endpoints
        # would not mend, so it leads (connection refused, a timeout, DNS).
        raise TargetError(f"Cannot reach the issuer {issuer}: {tried[0]}.")
    raise TargetError(
        f"No authorization server metadata with a token_endpoint at {issuer} (tried "
        + "; ".join(tried)
        + "). Give --rotcert-token-endpoint and the other endpoints explicitly."
    )


def admin_clients(
    session: requests.Session, admin: str, timeout: float
) -> dict[str, ClientCredentials]:
    """A rotcert mock's clients, by role, read from its admin API."""
    body = fetch_json(session, admin + "/clients", timeout)[0] or {}
    entries = body.get("clients")
    found = {}
    # The admin endpoint may come from a hostile server's metadata: an entry
    # that is not shaped like the mock's is ignored, not trusted.
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        role, client_id = entry.get("role"), entry.get("client_id")
        secret = entry.get("client_secret")
        if not (isinstance(role, str) and role and isinstance(client_id, str)):
            continue
        if secret is not None and not isinstance(secret, str):
            continue
        found[role] = ClientCredentials(
            client_id, secret, "basic" if secret else "none"
        )
    return found
