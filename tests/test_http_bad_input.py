"""Hostile input gets a 4xx JSON error from the mock: never a 5xx, never HTML."""

from __future__ import annotations

import base64
from urllib.parse import quote_plus

import pytest
from flask.testing import FlaskClient
from http_helpers import FORM, assert_ok, basic, http_client, make_server, mint
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from mock_server import MockServer

# RFC 6749 §5.2's character set for error and error_description.
ERROR_CHARS = set(map(chr, range(0x20, 0x7F))) - {'"', "\\"}


@pytest.fixture
def mock() -> MockServer:
    return make_server()


@pytest.fixture
def http(mock: MockServer) -> FlaskClient:
    return http_client(mock)


def assert_refused(response: TestResponse, status: int | None = None) -> dict:
    """A 4xx with a JSON error body in RFC 6749 §5.2's character set."""
    assert 400 <= response.status_code < 500, (response.status_code, response.data)
    if status is not None:
        assert response.status_code == status
    assert response.mimetype == "application/json", response.data[:200]
    body = response.get_json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str)
    for text in (body["error"], body.get("error_description", "")):
        assert set(text) <= ERROR_CHARS, text
    return body


def token_form(token: str = "x", **extra: str) -> str:
    params = {"grant_type": "refresh_token", "refresh_token": token, **extra}
    return "&".join(f"{k}={quote_plus(v)}" for k, v in params.items())


def main_auth(mock: MockServer) -> dict[str, str]:
    made = mock.credentials["main"]
    return basic(made.client_id, made.client_secret or "")


# ------------------------------------------------------------------ the body


@pytest.mark.parametrize(
    "content_type",
    [None, "application/json", "text/plain", "multipart/form-data; boundary=x"],
)
def test_wrong_content_type(http, mock, content_type):
    """STD-RT-C06: the token body must be form-urlencoded."""
    rt0 = mint(mock).refresh_token

    response = http.post(
        "/token",
        data=token_form(rt0),
        content_type=content_type,
        headers=main_auth(mock),
    )

    assert_refused(response, 400)
    assert_ok(
        http.post(
            "/token", data=token_form(rt0), content_type=FORM, headers=main_auth(mock)
        )
    )


def test_json_body(http, mock):
    """STD-RT-C06: a JSON token request is invalid_request."""
    response = http.post(
        "/token",
        json={"grant_type": "refresh_token", "refresh_token": "x"},
        headers=main_auth(mock),
    )

    assert assert_refused(response, 400)["error"] == "invalid_request"


@pytest.mark.parametrize(
    "body",
    [
        b"grant_type=refresh_token&refresh_token=\xff\xfe",
        b"grant_type=refresh_token&refresh_token=%ff%fe",
        b"grant_type=refresh_token&refresh_token=%C0%AF",
        b"grant_type=refresh_token&refresh_token=%ED%A0%80",
    ],
    ids=["raw-bytes", "percent-bytes", "overlong", "surrogate"],
)
def test_invalid_utf8(http, mock, body):
    """STD-RT-12: a body that is not UTF-8 is invalid_request."""
    response = http.post(
        "/token", data=body, content_type=FORM, headers=main_auth(mock)
    )

    assert assert_refused(response, 400)["error"] == "invalid_request"


@pytest.mark.parametrize(
    "body",
    [
        "grant_type=refresh_token&grant_type=refresh_token&refresh_token=x",
        "grant_type=refresh_token&refresh_token=x&refresh_token=",
        "grant_type=refresh_token&refresh_token=x&scope=a&scope=b",
    ],
)
def test_repeated_parameters(http, mock, body):
    """STD-RT-06: a repeated parameter, even empty, is invalid_request."""
    response = http.post(
        "/token", data=body, content_type=FORM, headers=main_auth(mock)
    )

    assert assert_refused(response, 400)["error"] == "invalid_request"


@pytest.mark.parametrize(
    "body", ["", "&&&", "=", "grant_type=&refresh_token=", "grant_type"]
)
def test_empty_parameters(http, mock, body):
    """STD-RT-04: empty parameters count as omitted."""
    response = http.post(
        "/token", data=body, content_type=FORM, headers=main_auth(mock)
    )

    assert assert_refused(response, 400)["error"] == "invalid_request"


@pytest.mark.parametrize("path", ["/token", "/revoke", "/introspect", "/admin/clock"])
def test_one_megabyte_body_is_413_json(http, mock, path):
    """Hostile input: a 1 MB body is refused with 413 JSON before it is read."""
    body = b"grant_type=refresh_token&refresh_token=" + b"A" * (1 << 20)

    response = http.post(path, data=body, content_type=FORM, headers=main_auth(mock))

    assert_refused(response, 413)


@pytest.mark.parametrize("method", ["get", "put", "delete", "patch"])
def test_other_methods_on_token(http, method):
    """STD-RT-03: only POST is allowed on the token endpoint."""
    response = getattr(http, method)("/token", query_string={"grant_type": "x"})

    assert_refused(response, 405)


def test_missing_and_unknown_grant_type(http, mock):
    """STD-RT-15: no grant_type is invalid_request, unknown is unsupported."""
    missing = http.post(
        "/token", data="refresh_token=x", content_type=FORM, headers=main_auth(mock)
    )
    unknown = http.post(
        "/token",
        data="grant_type=" + quote_plus('urn:\x00"\\é'),
        content_type=FORM,
        headers=main_auth(mock),
    )

    assert assert_refused(missing, 400)["error"] == "invalid_request"
    assert assert_refused(unknown, 400)["error"] == "unsupported_grant_type"


@pytest.mark.parametrize("encoded", ["a%00b", "%00" * 10, "%2500"])
def test_nul_bytes(http, mock, encoded):
    """STD-RT-21: NUL bytes in a token are just an unknown token."""
    body = "grant_type=refresh_token&refresh_token=" + encoded

    response = http.post(
        "/token", data=body, content_type=FORM, headers=main_auth(mock)
    )

    assert assert_refused(response, 400)["error"] == "invalid_grant"


def test_nul_bytes_in_raw_body(http, mock):
    """STD-RT-21: raw NUL bytes in the body do not break parsing."""
    body = b"grant_type=refresh_token&refresh_token=a\x00b"

    response = http.post(
        "/token", data=body, content_type=FORM, headers=main_auth(mock)
    )

    assert_refused(response, 400)


def test_extremely_long_token_at_token_endpoint(http, mock):
    """STD-RT-21: a 60 KB refresh token is an unknown token, not a crash."""
    response = http.post(
        "/token",
        data=token_form("A" * 60_000),
        content_type=FORM,
        headers=main_auth(mock),
    )

    assert assert_refused(response, 400)["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("path", "answer"), [("/revoke", {}), ("/introspect", {"active": False})]
)
def test_extremely_long_token_at_revoke_and_introspect(http, mock, path, answer):
    """STD-RT-51/54: a 60 KB token is unknown: 200 and the usual answer."""
    response = http.post(
        path, data="token=" + "A" * 60_000, content_type=FORM, headers=main_auth(mock)
    )

    assert response.status_code == 200
    assert response.get_json() == answer


# -------------------------------------------------------- Authorization header


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    "header",
    [
        "Basic !!!not-base64!!!",
        "Basic " + b64(b"no-colon-here"),
        "Basic " + b64(b"\xff\xfe:\xfd"),
        "Basic " + b64(b":"),
        "Basic ",
        "Basic",
        "Bearer some-access-token",
        "Digest username=x",
        "Basic " + "A" * 8000,
        "Basic " + b64(b"rotcert-client:" + b"\x00" * 8),
        "Basic \xe9\xe9\xe9",
        "basic " + b64(b"a:b") + " trailing",
    ],
)
@pytest.mark.parametrize("path", ["/token", "/revoke", "/introspect"])
def test_garbage_authorization_header(http, mock, header, path):
    """STD-RT-13: a broken Authorization header is 401 with a challenge."""
    rt0 = mint(mock).refresh_token
    form = token_form(rt0) if path == "/token" else f"token={rt0}"

    response = http.post(
        path, data=form, content_type=FORM, headers={"Authorization": header}
    )

    assert assert_refused(response, 401)["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert_ok(
        http.post(
            "/token", data=token_form(rt0), content_type=FORM, headers=main_auth(mock)
        )
    )


@pytest.mark.parametrize(
    "header", ["Bearer", "Bearer \x00", "Bearer " + "x" * 20_000, "Basic abc", "\xff"]
)
def test_garbage_bearer_at_resource(http, header):
    """STD-RT-70/71: odd Authorization headers at the resource are 401 JSON."""
    response = http.get("/resource", headers={"Authorization": header})

    assert response.status_code == 401
    assert response.mimetype == "application/json"
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")


# ------------------------------------------------------------------- admin API


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/admin/clock", b"<xml/>"),
        ("post", "/admin/clock", b'{"advance_seconds": NaN}'),
        ("post", "/admin/clock", b'{"advance_seconds": "1"}'),
        ("post", "/admin/clock", b'{"offset_seconds": 1e999}'),
        ("post", "/admin/faults", b'{"kind": "delay", "delay_ms": NaN}'),
        ("post", "/admin/faults", b'{"kind": ["http_500"]}'),
        ("post", "/admin/faults", b'{"kind": "delay", "delay_ms": -1}'),
        ("post", "/admin/grants", b'{"scope": 5}'),
        ("post", "/admin/grants", b"\xff"),
        ("put", "/admin/broken-modes", b'{"modes": [null]}'),
        ("put", "/admin/broken-modes", b'"no_rotation"'),
        ("put", "/admin/clients/rotcert-client/policy", b'{"a":' * 5000),
        ("put", "/admin/clients/rotcert-client/policy", b"[]"),
        (
            "put",
            "/admin/clients/rotcert-client/policy",
            b'{"access_token_ttl_in_minutes": NaN}',
        ),
        ("put", "/admin/clients/rotcert-client/grant-types", b'{"grant_types": 1}'),
    ],
)
def test_admin_api_bad_input(http, method, path, body):
    """Admin API: non-JSON, wrong types and NaN are 400 JSON, never 500."""
    response = getattr(http, method)(path, data=body, content_type="application/json")

    assert_refused(response, 400)


def test_hostile_delay_armed_in_process_is_harmless(http, mock):
    """K25: a negative delay armed without the admin API cannot cause a 500."""
    mock.add_fault({"kind": "delay", "delay_ms": -10})

    assert_ok(
        http.post(
            "/token",
            data=token_form(mint(mock).refresh_token),
            content_type=FORM,
            headers=main_auth(mock),
        )
    )


# ------------------------------------------------------------------ hypothesis

# One server for every generated example: state builds up, as it would in a
# long-running mock under fuzzing.
_FUZZ = make_server()
_FUZZ_HTTP = http_client(_FUZZ)
_MAIN = _FUZZ.credentials["main"]
_LIVE = mint(_FUZZ).refresh_token

PARAMETER_NAMES = [
    "grant_type",
    "refresh_token",
    "token",
    "client_id",
    "client_secret",
    "scope",
    "code",
    "code_verifier",
    "redirect_uri",
    "token_type_hint",
]
header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=200,
)
parameter_value = st.one_of(
    st.sampled_from(["refresh_token", "authorization_code", _LIVE, _MAIN.client_id]),
    st.text(max_size=50),
    st.binary(max_size=30).map(lambda raw: raw.hex()),
)
form_body = st.lists(
    st.tuples(st.sampled_from(PARAMETER_NAMES) | st.text(max_size=10), parameter_value),
    max_size=6,
).map(lambda pairs: "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in pairs))
raw_body = st.one_of(
    st.binary(max_size=500),
    form_body.map(str.encode),
    st.tuples(form_body, st.binary(max_size=20)).map(lambda t: t[0].encode() + t[1]),
)
authorization = st.one_of(
    st.none(),
    header_text,
    st.builds(lambda s: "Basic " + s, header_text),
    st.binary(max_size=60).map(lambda raw: "Basic " + b64(raw)),
    st.just(basic(_MAIN.client_id, _MAIN.client_secret or "")["Authorization"]),
    st.builds(lambda s: "Bearer " + s, header_text),
)
content_type = st.one_of(
    st.none(),
    st.sampled_from([FORM, FORM + "; charset=utf-8", "application/json", "text/plain"]),
    header_text,
)


@settings(max_examples=300, deadline=None, database=None)
@given(
    path=st.sampled_from(["/token", "/revoke", "/oidc/v1/token", "/introspect"]),
    body=raw_body,
    auth=authorization,
    ctype=content_type,
    extra=st.dictionaries(
        st.sampled_from(["X-Forwarded-For", "Accept", "Content-Encoding", "DPoP"]),
        header_text,
        max_size=2,
    ),
)
def test_fuzzed_requests_never_get_5xx_or_html(path, body, auth, ctype, extra):
    """STD-RT-12: fuzzed /token and /revoke requests get JSON below 500."""
    headers = dict(extra)
    if auth is not None:
        headers["Authorization"] = auth

    response = _FUZZ_HTTP.post(path, data=body, content_type=ctype, headers=headers)

    assert response.status_code < 500, (response.status_code, response.data)
    assert response.mimetype == "application/json", response.data[:200]
    answer = response.get_json()
    assert isinstance(answer, dict)
    if response.status_code >= 400:
        assert set(answer["error"]) <= ERROR_CHARS
        assert set(answer.get("error_description", "")) <= ERROR_CHARS
