"""The token endpoint over HTTP (Flask test client): RFC 6749 §3.2, §5, §6."""

from __future__ import annotations

import base64
import json
import time

import pytest
from flask.testing import FlaskClient
from http_helpers import (
    FORM,
    add_client,
    assert_error,
    assert_no_secrets,
    assert_ok,
    basic,
    creds,
    http_client,
    make_server,
    mint,
    post_form,
    refresh,
    token_values,
)

from mock_server import MockServer
from mock_server.codes import s256
from mock_server.tokens import fingerprint

DATABRICKS_BODY = {
    "error": "invalid_request",
    "error_description": "Refresh token is invalid",
}


@pytest.fixture
def mock() -> MockServer:
    return make_server()


@pytest.fixture
def http(mock: MockServer) -> FlaskClient:
    return http_client(mock)


def still_usable(http: FlaskClient, mock: MockServer, token: str, role="main"):
    """The token was not consumed: a proper refresh with it succeeds."""
    assert_ok(refresh(http, mock, token, role))


# --------------------------------------------------------------- success shape


@pytest.mark.parametrize(
    ("policy", "expires_in"),
    [
        ({}, 3600),
        ({"access_token_ttl_in_minutes": 15}, 900),
        ({"access_token_ttl_in_seconds": 30}, 30),
    ],
)
def test_refresh_success_shape(policy, expires_in):
    """STD-RT-10/11: 200 JSON with Bearer, expires_in = access TTL, no-store."""
    mock = make_server(policy)
    http = http_client(mock)
    rt0 = mint(mock).refresh_token

    response = refresh(http, mock, rt0)

    body = assert_ok(response)
    assert response.mimetype == "application/json"
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == expires_in and type(body["expires_in"]) is int
    assert isinstance(body["refresh_token"], str) and body["refresh_token"] != rt0
    assert body["scope"] == "all-apis offline_access"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"


def test_error_responses_carry_no_store_too():
    """STD-RT-11 (warning level): error responses are not cached either."""
    mock = make_server()
    response = refresh(http_client(mock), mock, "unknown")

    assert_error(response, 400, "invalid_grant")
    assert response.headers["Cache-Control"] == "no-store"


# --------------------------------------------------------- request syntax 03..07


def test_get_is_refused_and_consumes_nothing(http, mock):
    """STD-RT-03: a GET token request does not succeed."""
    rt0 = mint(mock).refresh_token
    client_id, secret = creds(mock)

    response = http.get(
        "/token",
        query_string={"grant_type": "refresh_token", "refresh_token": rt0},
        headers=basic(client_id, secret),
    )

    assert_error(response, 405, "invalid_request")
    assert "POST" in response.headers["Allow"]
    still_usable(http, mock, rt0)


def test_refresh_token_in_query_string_is_refused(http, mock):
    """STD-RT-C06: the token belongs in the body, never in the URL."""
    rt0 = mint(mock).refresh_token
    client_id, secret = creds(mock)

    response = http.post(
        "/token",
        query_string={"refresh_token": rt0},
        data="grant_type=refresh_token",
        content_type=FORM,
        headers=basic(client_id, secret),
    )

    assert_error(response, 400, "invalid_request")
    still_usable(http, mock, rt0)


@pytest.mark.parametrize("empty", ["refresh_token", "grant_type"])
def test_empty_parameter_counts_as_omitted(http, mock, empty):
    """STD-RT-04: an empty value is the same as a missing parameter."""
    rt0 = mint(mock).refresh_token
    params = {"grant_type": "refresh_token", "refresh_token": rt0, empty: ""}

    response = post_form(http, "/token", params, auth=creds(mock))

    assert_error(response, 400, "invalid_request")


def test_unknown_parameters_are_ignored(http, mock):
    """STD-RT-05: unrecognised parameters do not make a refresh fail."""
    rt0 = mint(mock).refresh_token

    assert_ok(refresh(http, mock, rt0, foo="bar", resource_hint="x"))


def test_repeated_parameter_is_invalid_request(http, mock):
    """STD-RT-06: a repeated parameter is invalid_request and spends nothing."""
    rt0 = mint(mock).refresh_token
    params = [
        ("grant_type", "refresh_token"),
        ("refresh_token", rt0),
        ("refresh_token", rt0),
    ]

    response = post_form(http, "/token", params, auth=creds(mock))

    assert_error(response, 400, "invalid_request")
    still_usable(http, mock, rt0)


def test_two_client_auth_methods_is_invalid_request(http, mock):
    """STD-RT-07: Basic plus client_secret in the body is invalid_request."""
    rt0 = mint(mock).refresh_token
    client_id, secret = creds(mock)
    params = {
        "grant_type": "refresh_token",
        "refresh_token": rt0,
        "client_secret": secret,
    }

    response = post_form(http, "/token", params, auth=(client_id, secret))

    assert_error(response, 400, "invalid_request")
    still_usable(http, mock, rt0)


# ------------------------------------------------------ client auth 08, 09, 13


@pytest.mark.parametrize(
    ("role", "method"),
    [("main", "basic"), ("main", "post"), ("public", "none")],
)
def test_each_client_auth_method_refreshes(http, mock, role, method):
    """STD-RT-08/09/57: client_secret_basic, client_secret_post and none work."""
    rt0 = mint(mock, role).refresh_token

    assert_ok(refresh(http, mock, rt0, role, method=method))

    event = mock.store.events()[-1]
    assert (
        event["auth_method"]
        == {
            "basic": "client_secret_basic",
            "post": "client_secret_post",
            "none": "none",
        }[method]
    )


def test_basic_credentials_are_form_urlencoded(http, mock):
    """STD-RT-08: id and secret holding ':' '+' '%' work when form-encoded."""
    client_id, secret = "app:one+two%41", "s3cr:et+pa%ss word"
    add_client(mock, client_id, secret)
    client = mock.client(client_id)
    rt0 = mock.authority.start_grant(client, "u", ["all-apis"]).refresh_token
    params = {"grant_type": "refresh_token", "refresh_token": rt0}

    response = post_form(http, "/token", params, auth=(client_id, secret))

    assert_ok(response)


def test_basic_credentials_are_decoded_as_form_encoding(http, mock):
    """STD-RT-08: an unencoded '+' in a Basic secret reads as a space."""
    client_id, secret = "plus-client", "a+b"
    add_client(mock, client_id, secret)
    rt0 = mock.authority.start_grant(
        mock.client(client_id), "u", ["all-apis"]
    ).refresh_token
    raw = "Basic " + base64.b64encode(b"plus-client:a+b").decode()
    params = {"grant_type": "refresh_token", "refresh_token": rt0}

    response = post_form(http, "/token", params, headers={"Authorization": raw})

    assert_error(response, 401, "invalid_client")
    assert_ok(post_form(http, "/token", params, auth=(client_id, secret)))


@pytest.mark.parametrize(
    "auth",
    [("rotcert-client", "wrong-secret"), ("no-such-client", "x")],
    ids=["wrong-secret", "unknown-client"],
)
def test_failed_basic_auth_is_401_with_basic_challenge(http, mock, auth):
    """STD-RT-13: failed Basic auth is 401 invalid_client + WWW-Authenticate."""
    rt0 = mint(mock).refresh_token
    params = {"grant_type": "refresh_token", "refresh_token": rt0}

    response = post_form(http, "/token", params, auth=auth)

    assert_error(response, 401, "invalid_client")
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    still_usable(http, mock, rt0)


def test_failed_body_auth_is_invalid_client(http, mock):
    """STD-RT-14: a wrong secret in the body is 400 or 401 invalid_client."""
    rt0 = mint(mock).refresh_token
    params = {"grant_type": "refresh_token", "refresh_token": rt0}

    response = post_form(
        http, "/token", params, auth=("rotcert-client", "wrong"), method="post"
    )

    assert_error(response, (400, 401), "invalid_client")
    still_usable(http, mock, rt0)


def test_no_client_auth_is_invalid_client(http, mock):
    """STD-RT-14: a refresh with no client authentication is invalid_client."""
    rt0 = mint(mock).refresh_token

    response = post_form(
        http, "/token", {"grant_type": "refresh_token", "refresh_token": rt0}
    )

    assert_error(response, (400, 401), "invalid_client")
    still_usable(http, mock, rt0)


def test_confidential_client_without_secret_is_refused(http, mock):
    """STD-RT-18: a confidential client needs more than its client_id."""
    rt0 = mint(mock).refresh_token

    response = refresh(http, mock, rt0, method="none")

    assert_error(response, (400, 401), "invalid_client")
    still_usable(http, mock, rt0)


def test_public_client_sending_a_secret_is_refused(http, mock):
    """STD-RT-65: a public client may not authenticate with a made-up secret."""
    rt0 = mint(mock, "public").refresh_token
    params = {"grant_type": "refresh_token", "refresh_token": rt0}

    response = post_form(
        http, "/token", params, auth=("rotcert-public", "made-up"), method="post"
    )

    assert_error(response, (400, 401), "invalid_client")
    still_usable(http, mock, rt0, "public")


@pytest.mark.parametrize(
    ("auth", "method"),
    [
        (("rotcert-client", "wrong"), "basic"),
        (("rotcert-client", "wrong"), "post"),
        (("rotcert-client", None), "none"),
        (("nobody", "x"), "basic"),
    ],
)
def test_failed_client_auth_never_consumes_the_token(http, mock, auth, method):
    """STD-RT-13/14, K5: failed client auth leaves the token unspent."""
    tokens = mint(mock)
    params = {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}

    for _ in range(3):
        response = post_form(http, "/token", params, auth=auth, method=method)
        assert_error(response, (400, 401), "invalid_client")

    lineage = mock.authority.lineage(tokens.family_id)
    assert lineage["refresh_tokens"][0]["consumed_at"] is None
    still_usable(http, mock, tokens.refresh_token)


def test_broken_mode_burns_token_on_failed_client_auth(http, mock):
    """STD-RT-13, K5: broken mode consume_on_failed_client_auth is observable."""
    mock.set_broken_modes(["consume_on_failed_client_auth"])
    rt0 = mint(mock).refresh_token
    params = {"grant_type": "refresh_token", "refresh_token": rt0}

    post_form(http, "/token", params, auth=("rotcert-client", "wrong"))

    assert_error(refresh(http, mock, rt0), 400, "invalid_grant")


# ------------------------------------------------- grant types 15, 16 and 17


@pytest.mark.parametrize(
    "grant_type", ["urn:x:bogus", "password", "client_credentials", 'é"\\x']
)
def test_unsupported_grant_type(http, mock, grant_type):
    """STD-RT-15/12: unknown grant types: unsupported_grant_type, plain ASCII."""
    params = {"grant_type": grant_type}

    response = post_form(http, "/token", params, auth=creds(mock))

    assert_error(response, 400, "unsupported_grant_type")
    description = response.get_json()["error_description"]
    assert all(0x20 <= ord(c) <= 0x7E and c not in '"\\' for c in description)


def test_client_not_allowed_refresh_grant_is_unauthorized_client(http, mock):
    """STD-RT-16: a client denied the refresh grant gets unauthorized_client."""
    rt0 = mint(mock).refresh_token
    restrict = http.put(
        "/admin/clients/rotcert-client/grant-types",
        json={"grant_types": ["authorization_code"]},
    )
    assert restrict.status_code == 200

    assert_error(refresh(http, mock, rt0), 400, "unauthorized_client")

    http.put(
        "/admin/clients/rotcert-client/grant-types",
        json={"grant_types": ["authorization_code", "refresh_token"]},
    )
    still_usable(http, mock, rt0)


def test_missing_refresh_token_is_invalid_request(http, mock):
    """STD-RT-17: a refresh without refresh_token is invalid_request."""
    response = post_form(
        http, "/token", {"grant_type": "refresh_token"}, auth=creds(mock)
    )

    assert_error(response, 400, "invalid_request")


def test_missing_grant_type_is_invalid_request(http, mock):
    """STD-RT-12: a token request without grant_type is invalid_request."""
    rt0 = mint(mock).refresh_token

    response = post_form(http, "/token", {"refresh_token": rt0}, auth=creds(mock))

    assert_error(response, 400, "invalid_request")
    still_usable(http, mock, rt0)


# ------------------------------------------------- grant validation 19..35


def test_token_of_another_client_is_invalid_grant(http, mock):
    """STD-RT-19: B presenting A's token gets invalid_grant; A keeps it."""
    rt0 = mint(mock).refresh_token

    assert_error(refresh(http, mock, rt0, "second"), 400, "invalid_grant")
    still_usable(http, mock, rt0)


def test_public_token_under_other_client_id_is_invalid_grant(http, mock):
    """STD-RT-20: P's token sent with another public client_id is invalid_grant."""
    add_client(mock, "rotcert-public-2", None)
    rt0 = mint(mock, "public").refresh_token
    params = {"grant_type": "refresh_token", "refresh_token": rt0}

    response = post_form(
        http, "/token", params, auth=("rotcert-public-2", None), method="none"
    )

    assert_error(response, 400, "invalid_grant")
    still_usable(http, mock, rt0, "public")


@pytest.mark.parametrize("token", ["garbage", "x" * 43, "flipped"])
def test_unknown_or_modified_token_is_invalid_grant(http, mock, token):
    """STD-RT-21/23: unknown, malformed or modified tokens are invalid_grant."""
    if token == "flipped":
        rt0 = mint(mock).refresh_token
        token = rt0[:-1] + ("A" if rt0[-1] != "A" else "B")

    assert_error(refresh(http, mock, token), 400, "invalid_grant")


def test_reuse_is_invalid_grant_and_revokes_the_family(http, mock):
    """STD-RT-34/35: a replayed token is invalid_grant and kills its successor."""
    rt0 = mint(mock, "public").refresh_token
    rt1 = assert_ok(refresh(http, mock, rt0, "public"))["refresh_token"]

    assert_error(refresh(http, mock, rt0, "public"), 400, "invalid_grant")
    assert_error(refresh(http, mock, rt1, "public"), 400, "invalid_grant")


def test_scope_broadening_is_invalid_scope(http, mock):
    """STD-RT-27: asking for more scope than granted is invalid_scope."""
    rt0 = mint(mock, scope="all-apis").refresh_token

    response = refresh(http, mock, rt0, scope="all-apis offline_access")

    assert_error(response, 400, "invalid_scope")
    still_usable(http, mock, rt0)


# -------------------------------------------------------- error shapes, broken


@pytest.mark.parametrize("case", ["unknown", "reuse", "revoked"])
def test_databricks_error_shape(case):
    """STD-RT-21/34: invalid_refresh_token_error=databricks gives its body."""
    mock = make_server({"invalid_refresh_token_error": "databricks"})
    http = http_client(mock)
    token = mint(mock).refresh_token
    if case == "unknown":
        token = "not-a-token"
    elif case == "reuse":
        assert_ok(refresh(http, mock, token))
    else:
        mock.authority.revoke(mock.client("rotcert-client"), token)

    response = refresh(http, mock, token)

    assert response.status_code == 400
    assert response.get_json() == DATABRICKS_BODY


def test_databricks_shape_leaves_other_errors_alone():
    """STD-RT-17: only an unusable refresh token takes Databricks' shape."""
    mock = make_server({"invalid_refresh_token_error": "databricks"})
    http = http_client(mock)

    response = post_form(
        http, "/token", {"grant_type": "refresh_token"}, auth=creds(mock)
    )

    assert_error(response, 400, "invalid_request")
    assert response.get_json()["error_description"] != "Refresh token is invalid"


@pytest.mark.parametrize("case", ["unknown", "reuse"])
def test_rfc6749_error_shape_by_default(http, mock, case):
    """STD-RT-21/34: by default an unusable refresh token is 400 invalid_grant."""
    token = mint(mock).refresh_token
    if case == "unknown":
        token = "not-a-token"
    else:
        assert_ok(refresh(http, mock, token))

    assert_error(refresh(http, mock, token), 400, "invalid_grant")


def test_broken_wrong_error_code_is_observable(http, mock):
    """STD-RT-21: broken mode wrong_error_code answers 401 invalid_token."""
    mock.set_broken_modes(["wrong_error_code"])

    response = refresh(http, mock, "not-a-token")

    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_token"


def test_broken_missing_no_store_is_observable(http, mock):
    """STD-RT-11: broken mode missing_no_store drops the cache headers."""
    mock.set_broken_modes(["missing_no_store"])
    rt0 = mint(mock).refresh_token

    response = refresh(http, mock, rt0)

    assert response.status_code == 200
    assert "Cache-Control" not in response.headers
    assert "Pragma" not in response.headers


# ---------------------------------------------------------------------- faults


def arm(http: FlaskClient, **fault) -> None:
    response = http.post("/admin/faults", json=fault)
    assert response.status_code == 200, response.get_json()


def test_fault_drop_response_after_commit(http, mock):
    """STD-RT-C15: the rotation commits, the client gets a 502 without tokens."""
    rt0 = mint(mock).refresh_token
    arm(http, kind="drop_response_after_commit", count=1)

    response = refresh(http, mock, rt0)

    assert response.status_code == 502
    assert response.mimetype == "application/json"
    assert "refresh_token" not in response.get_json()
    event = mock.store.events()[-1]
    assert event["outcome"] == "rotated" and event["status"] == 502
    assert event["fault"] == "drop_response_after_commit"
    assert event["generation"] == 1 and event["issued_fp"]
    # Committed: the token is spent, so presenting it again is reuse.
    assert_error(refresh(http, mock, rt0), 400, "invalid_grant")


def test_fault_drop_response_then_retry_inside_grace():
    """STD-RT-C15/38: with a grace period the retry with the old token succeeds."""
    mock = make_server({"reuse_grace_period_in_seconds": 10})
    http = http_client(mock)
    rt0 = mint(mock).refresh_token
    arm(http, kind="drop_response_after_commit", count=1)

    assert refresh(http, mock, rt0).status_code == 502

    assert_ok(refresh(http, mock, rt0))


def test_fault_http_500_consumes_nothing_and_counts(http, mock):
    """K25 http_500: two 500s (count=2), then the same token still works."""
    rt0 = mint(mock).refresh_token
    arm(http, kind="http_500", count=2)

    for _ in range(2):
        response = refresh(http, mock, rt0)
        assert response.status_code == 500
        assert response.get_json()["error"] == "server_error"

    still_usable(http, mock, rt0)


def test_fault_delay(http, mock):
    """K25 delay_ms: the token endpoint waits, once."""
    rt0 = mint(mock).refresh_token
    arm(http, kind="delay", delay_ms=300, count=1)

    started = time.monotonic()
    rt1 = assert_ok(refresh(http, mock, rt0))["refresh_token"]
    delayed = time.monotonic() - started
    started = time.monotonic()
    assert_ok(refresh(http, mock, rt1))

    assert delayed >= 0.3
    assert time.monotonic() - started < 0.3


def test_fault_omit_refresh_token(http, mock):
    """STD-RT-C02, K25: the refresh response leaves out refresh_token once."""
    rt0 = mint(mock).refresh_token
    arm(http, kind="omit_refresh_token", count=1)

    body = assert_ok(refresh(http, mock, rt0))

    assert "refresh_token" not in body
    assert "refresh_token" in assert_ok(refresh(http, mock, mint(mock).refresh_token))


def test_fault_extra_unknown_fields(http, mock):
    """STD-RT-C09, K25: the response carries members no RFC defines."""
    arm(http, kind="extra_unknown_fields", count=1)

    body = assert_ok(refresh(http, mock, mint(mock).refresh_token))

    assert "rotcert_unknown_member" in body
    assert "refresh_token_expires_in" in body


def test_fault_lowercase_token_type(http, mock):
    """STD-RT-C10, K25: token_type comes back lowercase."""
    arm(http, kind="lowercase_token_type", count=1)

    body = assert_ok(refresh(http, mock, mint(mock).refresh_token))

    assert body["token_type"] == "bearer"


def test_fault_resource_invalid_token(http, mock):
    """STD-RT-C11/71: the resource refuses a live access token once."""
    access = mint(mock).access_token
    arm(http, kind="resource_invalid_token", count=1)
    bearer = {"Authorization": f"Bearer {access}"}

    refused = http.get("/resource", headers=bearer)
    served = http.get("/resource", headers=bearer)

    assert_error(refused, 401, "invalid_token")
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert served.status_code == 200


def test_fault_scoped_to_one_client(http, mock):
    """K25: a fault armed for one client does not fire for another."""
    arm(http, kind="http_500", client_id="rotcert-second")

    assert_ok(refresh(http, mock, mint(mock).refresh_token))
    second = refresh(http, mock, mint(mock, "second").refresh_token, "second")
    assert second.status_code == 500


# ---------------------------------------------------------------------- events


def test_every_token_call_is_one_event_with_fingerprints(http, mock):
    """Events: one per token call, naming tokens by fingerprint only."""
    tokens = mint(mock)
    before = len(mock.store.events())

    rt1 = assert_ok(refresh(http, mock, tokens.refresh_token))["refresh_token"]
    refresh(http, mock, tokens.refresh_token)
    refresh(http, mock, rt1, "main", method="post")

    events = mock.store.events()[before:]
    assert [e["endpoint"] for e in events] == ["token"] * 3
    first, reuse, revoked = events
    assert first["presented_fp"] == fingerprint(tokens.refresh_token)
    assert first["issued_fp"] == fingerprint(rt1)
    assert (first["outcome"], first["status"], first["generation"]) == (
        "rotated",
        200,
        1,
    )
    assert first["family_id"] == tokens.family_id
    assert first["client_id"] == "rotcert-client"
    assert first["grant_type"] == "refresh_token"
    assert (reuse["reason"], reuse["status"]) == ("reuse_detected", 400)
    assert reuse["generation"] == 0 and reuse["family_id"] == tokens.family_id
    assert revoked["reason"] == "family_revoked"
    assert all(isinstance(e["time"], float) for e in events)


def test_events_never_hold_a_token_or_secret(tmp_path):
    """DESIGN events: no token, code or secret in events or the record file."""
    record = tmp_path / "events.jsonl"
    mock = make_server(record=record)
    http = http_client(mock)
    secrets = {c.client_secret for c in mock.credentials.values() if c.client_secret}
    secrets |= {"wrong-secret-value-1234"}

    # A code flow for the public client, with PKCE.
    verifier = "v" * 50
    authorize = http.get(
        "/authorize",
        query_string={
            "client_id": "rotcert-public",
            "response_type": "code",
            "redirect_uri": "http://127.0.0.1:9/cb",
            "code_challenge": s256(verifier),
            "state": "s",
        },
    )
    code = authorize.headers["Location"].split("code=")[1].split("&")[0]
    secrets |= {code, verifier}
    exchange = post_form(
        http,
        "/token",
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": "http://127.0.0.1:9/cb",
            "code_verifier": verifier,
        },
        auth=("rotcert-public", None),
        method="none",
    )
    secrets |= token_values(exchange.get_json())

    # Refresh, reuse, failed auth, revoke, introspect, resource.
    grant = http.post("/admin/grants", json={}).get_json()
    secrets |= token_values(grant)
    rotated = refresh(http, mock, grant["refresh_token"]).get_json()
    secrets |= token_values(rotated)
    refresh(http, mock, grant["refresh_token"])
    post_form(
        http,
        "/token",
        {"grant_type": "refresh_token", "refresh_token": rotated["refresh_token"]},
        auth=("rotcert-client", "wrong-secret-value-1234"),
    )
    for path in ("/introspect", "/revoke"):
        post_form(http, path, {"token": rotated["refresh_token"]}, auth=creds(mock))
    http.get("/resource", headers={"Authorization": f"Bearer {grant['access_token']}"})
    http.get(
        "/resource",
        headers={"Authorization": f"Bearer {rotated['refresh_token']}"},
    )
    created = http.post(
        "/api/2.0/accounts/acc/oauth2/custom-app-integrations",
        json={"name": "x", "confidential": True, "token_access_policy": {}},
    ).get_json()
    secrets |= token_values(created)

    assert len(secrets) >= 10
    events = mock.store.events()
    assert {e["endpoint"] for e in events} >= {
        "authorize",
        "token",
        "admin_grant",
        "introspect",
        "revoke",
        "resource",
    }
    assert_no_secrets(json.dumps(events), secrets)
    assert_no_secrets(record.read_text(), secrets)
    assert_no_secrets(http.get("/admin/events.jsonl").get_data(as_text=True), secrets)
    assert len(record.read_text().splitlines()) == len(events)


def test_a_refresh_reads_the_settings_once(tmp_path):
    """Serving (issue 5): a refresh is three record transactions and one event.

    Settings (clock offset, broken modes, faults, grant types) come from one
    snapshot per OAuth request; then the client and the rotation. Read one by one
    they were fourteen; with SQLite each is a lock round trip shared by every
    worker process.
    """
    from mock_server import SQLiteStore

    mock = MockServer(store=SQLiteStore(tmp_path / "count.db"))
    http = http_client(mock)
    token = http.post("/admin/grants", json={}).get_json()["refresh_token"]
    opened = []
    transaction, append_event = mock.store.transaction, mock.store.append_event

    def counting(write=True):
        opened.append("write" if write else "read")
        return transaction(write)

    def appending(event):
        opened.append("event")
        return append_event(event)

    mock.store.transaction, mock.store.append_event = counting, appending
    response = refresh(http, mock, token)

    assert response.status_code == 200
    assert opened == ["read", "read", "write", "event"]


def test_a_setting_changed_between_requests_is_seen(http, mock):
    """Serving: the snapshot lives for one request; the next one reads afresh.

    A broken mode switched on between two refreshes applies to the second.
    """
    grant = http.post("/admin/grants", json={}).get_json()
    first = refresh(http, mock, grant["refresh_token"])
    assert first.status_code == 200

    http.put("/admin/broken-modes", json={"modes": ["no_rotation"]})
    second = refresh(http, mock, first.get_json()["refresh_token"])

    assert second.get_json().get("refresh_token") == first.get_json()["refresh_token"]
