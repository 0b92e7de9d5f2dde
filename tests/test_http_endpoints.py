"""Discovery, authorize with PKCE, revocation, introspection and the resource."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from flask.testing import FlaskClient
from http_helpers import (
    assert_error,
    assert_ok,
    creds,
    http_client,
    make_server,
    mint,
    post_form,
    refresh,
)

from mock_server import MockServer
from mock_server.codes import s256

CALLBACK = "http://127.0.0.1:8020/callback"
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"


@pytest.fixture
def mock() -> MockServer:
    return make_server()


@pytest.fixture
def http(mock: MockServer) -> FlaskClient:
    return http_client(mock)


def authorize(http: FlaskClient, path: str = "/authorize", **params: str):
    query = {
        "client_id": "rotcert-public",
        "response_type": "code",
        "redirect_uri": CALLBACK,
        "code_challenge": s256(VERIFIER),
        "code_challenge_method": "S256",
        "state": "xyz",
        "scope": "all-apis offline_access",
    }
    query.update(params)
    return http.get(path, query_string={k: v for k, v in query.items() if v})


def redirect_params(response) -> dict[str, str]:
    assert response.status_code == 302, response.data
    location = response.headers["Location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def exchange(
    http: FlaskClient,
    code: str,
    role: tuple[str, str | None] = ("rotcert-public", None),
    method: str = "none",
    path: str = "/token",
    **params: str,
):
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "code_verifier": VERIFIER,
    }
    form.update(params)
    form = {k: v for k, v in form.items() if v}
    return post_form(http, path, form, auth=role, method=method)


# ------------------------------------------------------------------- discovery


@pytest.mark.parametrize(
    ("path", "issuer_suffix", "token_path"),
    [
        ("/.well-known/oauth-authorization-server", "", "/token"),
        ("/.well-known/openid-configuration", "", "/token"),
        ("/oidc/.well-known/oauth-authorization-server", "/oidc", "/oidc/v1/token"),
        ("/oidc/.well-known/openid-configuration", "/oidc", "/oidc/v1/token"),
    ],
)
def test_discovery_documents(http, path, issuer_suffix, token_path):
    """STD-RT-56/57/58: RFC 8414 metadata at the root and Databricks' paths."""
    response = http.get(path)

    assert response.status_code == 200
    meta = response.get_json()
    assert meta["issuer"] == "http://localhost" + issuer_suffix
    assert meta["token_endpoint"] == "http://localhost" + token_path
    assert "refresh_token" in meta["grant_types_supported"]
    assert set(meta["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
        "none",
    }
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["revocation_endpoint"].endswith("/revoke")
    assert meta["introspection_endpoint"].endswith("/introspect")


def test_discovery_uses_the_configured_issuer():
    """STD-RT-56: the issuer is what the server was told, not the Host header."""
    mock = make_server(issuer="https://mock.example")

    meta = http_client(mock).get("/.well-known/oauth-authorization-server")

    assert meta.get_json()["issuer"] == "https://mock.example"
    assert meta.get_json()["token_endpoint"] == "https://mock.example/token"


def test_databricks_host_metadata(http, mock):
    """Databricks unified auth: host metadata names the OIDC root."""
    response = http.get("/.well-known/databricks-config")

    assert response.status_code == 200
    body = response.get_json()
    assert body["oidc_endpoint"] == "http://localhost/oidc"
    assert body["account_id"] == mock.account_id
    oidc = http.get(
        urlsplit(body["oidc_endpoint"]).path + "/.well-known/oauth-authorization-server"
    )
    assert oidc.status_code == 200


# ---------------------------------------------------------- authorize and PKCE


@pytest.mark.parametrize(
    ("authorize_path", "token_path"),
    [("/authorize", "/token"), ("/oidc/v1/authorize", "/oidc/v1/token")],
)
def test_code_flow_with_pkce_end_to_end(http, mock, authorize_path, token_path):
    """STD-RT-01/32: code + PKCE S256 yields a rotating refresh token."""
    params = redirect_params(authorize(http, authorize_path))
    assert params["state"] == "xyz"

    tokens = assert_ok(exchange(http, params["code"], path=token_path))

    assert tokens["refresh_token"] and tokens["scope"] == "all-apis offline_access"
    rotated = assert_ok(
        refresh(http, mock, tokens["refresh_token"], "public", path=token_path)
    )
    assert rotated["refresh_token"] != tokens["refresh_token"]
    event = mock.store.events()[-2]
    assert (event["grant_type"], event["generation"]) == ("authorization_code", 0)


def test_code_is_single_use(http):
    """RFC 6749 §4.1.2: a second exchange of one code is invalid_grant."""
    code = redirect_params(authorize(http))["code"]
    assert_ok(exchange(http, code))

    assert_error(exchange(http, code), 400, "invalid_grant")


def test_verifier_mismatch_is_invalid_grant(http):
    """RFC 7636 §4.6: a wrong code_verifier is invalid_grant."""
    code = redirect_params(authorize(http))["code"]

    response = exchange(http, code, code_verifier="x" * 43)

    assert_error(response, 400, "invalid_grant")


def test_missing_verifier_is_invalid_grant(http):
    """RFC 7636 §4.6: a code issued with a challenge needs its verifier."""
    code = redirect_params(authorize(http))["code"]

    assert_error(exchange(http, code, code_verifier=""), 400, "invalid_grant")


def test_verifier_without_challenge_is_refused(http, mock):
    """RFC 9700 §4.8.2: a verifier for a code without a challenge is refused."""
    code = redirect_params(
        authorize(http, client_id="rotcert-client", code_challenge="")
    )["code"]

    response = exchange(http, code, creds(mock), method="basic")

    assert_error(response, 400, "invalid_grant")


def test_confidential_client_without_pkce_may_exchange(http, mock):
    """RFC 6749 §4.1: a confidential client may still use a plain code."""
    code = redirect_params(
        authorize(http, client_id="rotcert-client", code_challenge="")
    )["code"]

    response = exchange(http, code, creds(mock), method="basic", code_verifier="")

    assert_ok(response)


def test_redirect_uri_mismatch_at_token_is_invalid_grant(http):
    """RFC 6749 §4.1.3: the token request repeats the authorize redirect_uri."""
    code = redirect_params(authorize(http))["code"]

    response = exchange(http, code, redirect_uri="http://127.0.0.1:8020/other")

    assert_error(response, 400, "invalid_grant")


def test_unregistered_redirect_uri_is_refused_without_redirect(http):
    """RFC 6749 §4.1.2.1: an unregistered redirect_uri is never redirected to."""
    response = authorize(http, redirect_uri="https://evil.example/cb")

    assert_error(response, 400, "invalid_request")
    assert "Location" not in response.headers


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1/#frag",
        "http://127.0.0.1:99999/cb",
        "http://127.0.0.1:abc/cb",
        "http://[::1",
        "http://127.0.0.1/\r\nX-Injected: 1",
    ],
)
def test_malformed_redirect_uri_is_refused_before_a_code(http, mock, uri):
    """RFC 6749 §3.1.2: a redirect URI with a fragment, a bad port or control
    characters is a 400, and no code is issued."""
    response = authorize(http, redirect_uri=uri)

    assert_error(response, 400, "invalid_request")
    with mock.store.transaction(write=False) as tx:
        assert tx.all("code") == []


def test_repeated_authorize_parameter_is_refused(http):
    """RFC 6749 §3.1: a repeated parameter is invalid_request, not first-wins."""
    response = http.get(
        "/authorize?client_id=rotcert-public&client_id=rotcert-client"
        "&response_type=code&redirect_uri=" + CALLBACK
    )

    assert_error(response, 400, "invalid_request")


def test_public_client_without_pkce_is_refused(http):
    """RFC 9700 §2.1.1: a public client must send a code_challenge."""
    params = redirect_params(authorize(http, code_challenge=""))

    assert params["error"] == "invalid_request"
    assert params["state"] == "xyz"
    assert "code" not in params


def test_plain_challenge_method_is_refused(http):
    """RFC 7636 §4.2: only S256 is offered."""
    params = redirect_params(authorize(http, code_challenge_method="plain"))

    assert params["error"] == "invalid_request"


def test_scope_beyond_client_is_invalid_scope(http):
    """RFC 6749 §4.1.2.1: a scope the client may not have is invalid_scope."""
    params = redirect_params(authorize(http, scope="all-apis admin"))

    assert params["error"] == "invalid_scope"


def test_code_of_another_client_is_invalid_grant(http, mock):
    """RFC 6749 §4.1.3: a code is bound to the client it was issued to."""
    code = redirect_params(authorize(http))["code"]

    response = exchange(http, code, creds(mock), method="basic")

    assert_error(response, 400, "invalid_grant")


# -------------------------------------------------------------------- revoke


def revoke(http, mock, token: str | None, role="main", **extra: str):
    params = {"token": token, **extra} if token is not None else dict(extra)
    method = "none" if role == "public" else "basic"
    return post_form(http, "/revoke", params, auth=creds(mock, role), method=method)


def test_revoke_refresh_token_revokes_family(http, mock):
    """STD-RT-45/46/47: revoking a refresh token kills it and its access tokens."""
    tokens = mint(mock)

    response = revoke(http, mock, tokens.refresh_token)

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert_error(refresh(http, mock, tokens.refresh_token), 400, "invalid_grant")
    resource = http.get(
        "/resource", headers={"Authorization": f"Bearer {tokens.access_token}"}
    )
    assert_error(resource, 401, "invalid_token")
    assert mock.store.events()[-2]["family_id"] == tokens.family_id


def test_revoke_with_wrong_hint_still_revokes(http, mock):
    """STD-RT-49: token_type_hint is only a hint."""
    rt0 = mint(mock).refresh_token

    assert revoke(http, mock, rt0, token_type_hint="access_token").status_code == 200

    assert_error(refresh(http, mock, rt0), 400, "invalid_grant")


@pytest.mark.parametrize("token", ["garbage", "twice"])
def test_revoke_unknown_or_revoked_token_is_200(http, mock, token):
    """STD-RT-51: unknown and already revoked tokens get 200."""
    if token == "twice":
        token = mint(mock).refresh_token
        assert revoke(http, mock, token).status_code == 200

    assert revoke(http, mock, token).status_code == 200


def test_revoke_by_public_client(http, mock):
    """STD-RT-45: a public client revokes its own token with client_id only."""
    rt0 = mint(mock, "public").refresh_token

    assert revoke(http, mock, rt0, "public").status_code == 200

    assert_error(refresh(http, mock, rt0, "public"), 400, "invalid_grant")


def test_cross_client_revocation_is_refused(http, mock):
    """STD-RT-50: B cannot revoke A's token; it stays usable for A."""
    rt0 = mint(mock).refresh_token

    response = revoke(http, mock, rt0, "second")

    assert response.status_code == 400
    assert response.get_json()["error"] in {"invalid_grant", "invalid_client"}
    assert_ok(refresh(http, mock, rt0))


def test_revoke_without_token_is_invalid_request(http, mock):
    """STD-RT-52: a revocation request without token is invalid_request."""
    assert_error(revoke(http, mock, None), 400, "invalid_request")


def test_revoke_with_bad_basic_auth_is_401(http, mock):
    """STD-RT-52: bad Basic credentials at /revoke are 401 with a challenge."""
    rt0 = mint(mock).refresh_token

    response = post_form(
        http, "/revoke", {"token": rt0}, auth=("rotcert-client", "wrong")
    )

    assert_error(response, 401, "invalid_client")
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert_ok(refresh(http, mock, rt0))


# ---------------------------------------------------------------- introspect


def introspect(http, mock, token: str, auth=None):
    return post_form(http, "/introspect", {"token": token}, auth=auth or creds(mock))


def test_introspect_without_credentials_is_401(http, mock):
    """STD-RT-53: introspection needs an authorized caller."""
    rt0 = mint(mock).refresh_token

    response = post_form(http, "/introspect", {"token": rt0})

    assert_error(response, 401, "invalid_client")


def test_introspect_with_wrong_secret_is_401(http, mock):
    """STD-RT-55: wrong caller credentials are 401 invalid_client."""
    rt0 = mint(mock).refresh_token

    response = introspect(http, mock, rt0, auth=("rotcert-client", "wrong"))

    assert_error(response, 401, "invalid_client")


def test_introspect_by_public_client_is_401(http, mock):
    """STD-RT-53: a public client is not an authorized introspection caller."""
    rt0 = mint(mock, "public").refresh_token

    response = post_form(
        http, "/introspect", {"token": rt0}, auth=creds(mock, "public"), method="none"
    )

    assert_error(response, 401, "invalid_client")


def test_introspect_live_and_inactive_tokens(http, mock):
    """STD-RT-54: live tokens are active, dead ones exactly {"active": false}."""
    tokens = mint(mock)
    live = introspect(http, mock, tokens.refresh_token).get_json()
    assert live["active"] is True and live["token_type"] == "refresh_token"
    assert live["client_id"] == "rotcert-client"
    access = introspect(http, mock, tokens.access_token).get_json()
    assert access["active"] is True and access["token_type"] == "access_token"

    rt1 = assert_ok(refresh(http, mock, tokens.refresh_token))["refresh_token"]
    rotated = introspect(http, mock, tokens.refresh_token)
    foreign = introspect(http, mock, rt1, auth=creds(mock, "second"))
    unknown = introspect(http, mock, "garbage")
    revoke(http, mock, rt1)
    revoked = introspect(http, mock, rt1)

    for response in (rotated, foreign, unknown, revoked):
        assert response.status_code == 200
        assert response.get_json() == {"active": False}


def test_introspect_expired_token_is_inactive(http, mock):
    """STD-RT-54: an expired refresh token is {"active": false}."""
    rt0 = mint(mock).refresh_token
    mock.clock.advance(24 * 3600 + 1)

    assert introspect(http, mock, rt0).get_json() == {"active": False}


# ------------------------------------------------------------------ resource


@pytest.mark.parametrize("path", ["/resource", "/api/2.0/resource"])
def test_resource_without_token_is_401_realm_only(http, path):
    """STD-RT-70: no credentials give 401 Bearer realm and no error code."""
    response = http.get(path)

    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer realm=")
    assert "error=" not in challenge


def test_resource_serves_live_access_token(http, mock):
    """STD-RT-71: a live access token is served."""
    tokens = mint(mock)

    response = http.get(
        "/resource", headers={"Authorization": f"Bearer {tokens.access_token}"}
    )

    assert response.status_code == 200
    assert response.get_json()["client_id"] == "rotcert-client"


@pytest.mark.parametrize("case", ["expired", "revoked", "unknown"])
def test_resource_refuses_dead_access_token(http, mock, case):
    """STD-RT-71: expired, revoked or unknown access tokens are 401 invalid_token."""
    tokens = mint(mock)
    access = tokens.access_token
    if case == "expired":
        mock.clock.advance(3600 + 1)
    elif case == "revoked":
        revoke(http, mock, access)
    else:
        access = "garbage"

    response = http.get("/resource", headers={"Authorization": f"Bearer {access}"})

    assert_error(response, 401, "invalid_token")
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge


def test_access_tokens_die_with_a_reused_family(http, mock):
    """STD-RT-36: after reuse detection the family's access tokens are refused."""
    tokens = mint(mock)
    rotated = assert_ok(refresh(http, mock, tokens.refresh_token))
    refresh(http, mock, tokens.refresh_token)

    response = http.get(
        "/resource", headers={"Authorization": f"Bearer {rotated['access_token']}"}
    )

    assert_error(response, 401, "invalid_token")


def test_refresh_token_sent_to_resource_is_flagged(http, mock):
    """STD-RT-C08: a refresh token sent to the resource is refused, flagged."""
    tokens = mint(mock)

    response = http.get(
        "/resource", headers={"Authorization": f"Bearer {tokens.refresh_token}"}
    )

    assert response.status_code in {400, 401}
    event = mock.store.events()[-1]
    assert event["endpoint"] == "resource"
    assert event["reason"] == "refresh_token_at_resource"
