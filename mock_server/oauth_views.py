"""OAuth endpoints: discovery, authorize, token, revocation, introspection and a
protected resource, at the root and at Databricks' paths."""

from __future__ import annotations

import math
import time
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, g, redirect, request

from .app import current_server, error_text, json_response
from .codes import issue_code, redeem_code
from .errors import (
    InvalidClient,
    InvalidRequest,
    InvalidToken,
    OAuthError,
    ServerError,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from .forms import authenticate_client, read_form
from .server import GRANT_TYPES
from .tokens import fingerprint

__all__ = ["oauth"]

oauth = Blueprint("oauth", __name__)

AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def _base_url() -> str:
    return current_server().issuer or request.host_url.rstrip("/")


def _metadata(prefix: str) -> dict:
    base = _base_url()
    authorize, token = (
        ("/oidc/v1/authorize", "/oidc/v1/token") if prefix else ("/authorize", "/token")
    )
    scopes = sorted({s for c in current_server().clients() for s in c.scopes})
    return {
        "issuer": base + prefix,
        "authorization_endpoint": base + authorize,
        "token_endpoint": base + token,
        "revocation_endpoint": base + "/revoke",
        "introspection_endpoint": base + "/introspect",
        "response_types_supported": ["code"],
        "grant_types_supported": list(GRANT_TYPES),
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS[:2],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": scopes,
        # Not a registered metadata name: where rotcert's admin API lives.
        "rotcert_admin_endpoint": base + "/admin",
        "rotcert_resource_endpoint": base + "/resource",
    }


@oauth.get("/.well-known/oauth-authorization-server")
@oauth.get("/.well-known/openid-configuration")
def root_metadata():
    return json_response(_metadata(""), no_store=False)


@oauth.get("/oidc/.well-known/oauth-authorization-server")
@oauth.get("/oidc/.well-known/openid-configuration")
def databricks_metadata():
    return json_response(_metadata("/oidc"), no_store=False)


@oauth.get("/.well-known/databricks-config")
def databricks_config():
    server = current_server()
    return json_response(
        {
            "oidc_endpoint": _base_url() + "/oidc",
            "account_id": server.account_id,
            "workspace_id": "1",
        },
        no_store=False,
    )


# ------------------------------------------------------------------ authorize


def _redirect_allowed(uri: str, registered: list[str]) -> bool:
    # No fragment (RFC 6749 §3.1.2) and nothing that cannot go in a header.
    if "#" in uri or any(ord(c) < 0x21 or ord(c) > 0x7E for c in uri):
        return False
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises on a port that is not a number or too big
    except ValueError:
        return False
    if uri in registered:
        return True
    # Native and CLI clients listen on a loopback port chosen at run time.
    return parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS


def _redirect_with(uri: str, **params: str | None):
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return redirect(uri + ("&" if "?" in uri else "?") + query, code=302)


@oauth.route("/authorize", methods=["GET", "POST"])
@oauth.route("/oidc/v1/authorize", methods=["GET", "POST"])
def authorize():
    """Auto-approves the configured user: no UI, so flows run headless."""
    server = current_server()
    params = request.values
    g.event = {"endpoint": "authorize", "client_id": params.get("client_id")}
    repeated = sorted(name for name in params if len(params.getlist(name)) > 1)
    if repeated:
        raise InvalidRequest(
            f"Parameter {repeated[0]} is repeated.", reason="repeated_parameter"
        )

    client = server.client(params.get("client_id", ""))
    if client is None:
        raise InvalidRequest("Unknown client_id.", reason="unknown_client")
    uri = params.get("redirect_uri")
    if uri is None and len(client.redirect_urls) == 1:
        uri = client.redirect_urls[0]
    if uri is None or not _redirect_allowed(uri, client.redirect_urls):
        raise InvalidRequest(
            "redirect_uri is missing or not registered for this client.",
            reason="bad_redirect_uri",
        )

    state = params.get("state")
    if params.get("response_type") != "code":
        return _redirect_with(uri, error="unsupported_response_type", state=state)
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method", "S256" if challenge else None)
    if challenge and method != "S256":
        return _redirect_with(
            uri,
            error="invalid_request",
            error_description="Only the S256 code challenge method is supported.",
            state=state,
        )
    if not challenge and not client.confidential:
        return _redirect_with(
            uri,
            error="invalid_request",
            error_description="Public clients must use PKCE (code_challenge).",
            state=state,
        )
    requested = params.get("scope", "").split() or list(client.scopes)
    extra = sorted(set(requested) - set(client.scopes))
    if extra:
        return _redirect_with(
            uri,
            error="invalid_scope",
            error_description=error_text(
                "Scope not allowed for this client: " + " ".join(extra)
            ),
            state=state,
        )

    code = issue_code(
        server, client, server.user, requested, params.get("redirect_uri"), challenge
    )
    g.event.update(outcome="code_issued")
    return _redirect_with(uri, code=code, state=state)


# ---------------------------------------------------------------------- token


def _bounded(value, limit: float) -> float:
    # Faults can be armed in-process without the admin API's checks; a negative or
    # non-numeric wait must not turn into a 500 from time.sleep.
    try:
        seconds = float(value)
    except (TypeError, ValueError, OverflowError):
        return 0.0
    if math.isnan(seconds):
        return 0.0
    return min(max(seconds, 0.0), limit)


def _apply_response_faults(server, body: dict, client_id: str) -> dict:
    if body.get("refresh_token") and server.take_fault("omit_refresh_token", client_id):
        body.pop("refresh_token")
    if server.take_fault("extra_unknown_fields", client_id):
        body["rotcert_unknown_member"] = {"nested": [1, 2, 3]}
        body["refresh_token_expires_in"] = 86400
    if server.take_fault("lowercase_token_type", client_id):
        body["token_type"] = "bearer"
    return body


@oauth.post("/token")
@oauth.post("/oidc/v1/token")
def token():
    server = current_server()
    g.event = event = {"endpoint": "token"}
    form = read_form(request)
    grant_type = g.grant_type = form.get("grant_type")
    presented = form.get("refresh_token")
    event.update(
        grant_type=grant_type,
        presented_fp=fingerprint(presented) if presented else None,
        scope_requested=form.get("scope"),
    )
    if grant_type is None:
        raise InvalidRequest("grant_type is missing.", reason="no_grant_type")

    try:
        auth = authenticate_client(server, request, form)
    except InvalidClient:
        if presented and "consume_on_failed_client_auth" in server.broken_modes():
            server.authority.burn(presented)
        event["client_id"] = form.get("client_id")
        raise
    client = g.client = auth.client
    event.update(client_id=client.client_id, auth_method=auth.method)
    if grant_type in GRANT_TYPES and grant_type not in server.grant_types(
        client.client_id
    ):
        raise UnauthorizedClient(
            f"This client may not use grant_type {grant_type}.",
            reason="grant_type_not_allowed",
        )

    delay = server.take_fault("delay", client.client_id)
    if delay:
        time.sleep(_bounded(delay.get("delay_ms", 1000), 60_000) / 1000)
    if server.take_fault("http_500", client.client_id):
        raise ServerError("Injected fault: the server failed.", reason="fault_http_500")

    if grant_type == "refresh_token":
        if presented is None:
            raise InvalidRequest("refresh_token is missing.", reason="no_refresh_token")
        scope = form.get("scope")
        tokens = server.authority.refresh(
            client, presented, None if scope is None else scope.split()
        )
    elif grant_type == "authorization_code":
        tokens = redeem_code(server, client, form)
    else:
        raise UnsupportedGrantType(
            f"grant_type {grant_type!r} is not supported.", reason="unsupported_grant"
        )

    event.update(
        outcome=tokens.outcome,
        family_id=tokens.family_id,
        generation=tokens.generation,
        issued_fp=tokens.issued_fp,
        scope_granted=" ".join(tokens.scope),
    )
    dropped = server.take_fault("drop_response_after_commit", client.client_id)
    if dropped:
        event["fault"] = "drop_response_after_commit"
        time.sleep(_bounded(dropped.get("hang_seconds", 0), 120))
        return json_response(
            {
                "error": "temporarily_unavailable",
                "error_description": "Injected fault: the response was lost after "
                "the refresh was committed.",
            },
            502,
        )
    body = _apply_response_faults(server, tokens.response(), client.client_id)
    return json_response(body)


# ------------------------------------------------------ revocation, introspect


@oauth.post("/revoke")
@oauth.post("/oidc/v1/revoke")
def revoke():
    server = current_server()
    g.event = event = {"endpoint": "revoke"}
    form = read_form(request)
    auth = authenticate_client(server, request, form)
    g.client = auth.client
    presented = form.get("token")
    event.update(
        client_id=auth.client.client_id,
        presented_fp=fingerprint(presented) if presented else None,
    )
    if presented is None:
        raise InvalidRequest("token is missing.", reason="no_token")
    family = server.authority.revoke(auth.client, presented)
    event.update(outcome="revoked", family_id=family)
    # RFC 7009 §2.2: 200 whether or not the token was known.
    return json_response({}, 200)


@oauth.post("/introspect")
@oauth.post("/oidc/v1/introspect")
def introspect():
    server = current_server()
    g.event = {"endpoint": "introspect"}
    form = read_form(request)
    try:
        auth = authenticate_client(server, request, form)
    except InvalidClient as exc:
        # RFC 7662 §2.3: an unauthorized caller gets 401.
        raise exc.with_challenge() from None
    if auth.method == "none":
        raise InvalidClient(
            "Introspection needs a confidential client.", reason="public_introspect"
        ).with_challenge()
    presented = form.get("token")
    if presented is None:
        raise InvalidRequest("token is missing.", reason="no_token")
    g.event.update(client_id=auth.client.client_id, presented_fp=fingerprint(presented))
    return json_response(server.authority.introspect(auth.client, presented))


# ------------------------------------------------------------------- resource


@oauth.route("/resource", methods=["GET", "POST"])
@oauth.route("/api/2.0/resource", methods=["GET", "POST"])
def resource():
    """A protected resource answering as RFC 6750 §3 describes."""
    server = current_server()
    g.event = event = {"endpoint": "resource"}
    header = request.headers.get("Authorization", "")
    if header[:7].lower() != "bearer ":
        event.update(error="no_token", reason="no_token")
        response = json_response({"error": "unauthorized"}, 401)
        response.headers["WWW-Authenticate"] = 'Bearer realm="rotcert"'
        return response
    presented = header[7:].strip()
    event["presented_fp"] = fingerprint(presented)
    try:
        access = server.authority.validate_access(presented)
    except OAuthError as exc:
        event["family_id"] = exc.family_id
        raise
    event.update(client_id=access.client_id, family_id=access.family_id)
    if server.take_fault("resource_invalid_token", access.client_id):
        raise InvalidToken("Injected fault: token refused.", reason="fault_resource")
    event["outcome"] = "served"
    return json_response(
        {"sub": access.user, "client_id": access.client_id, "scope": access.scope}
    )
