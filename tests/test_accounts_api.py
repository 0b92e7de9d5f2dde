"""Databricks' account API for custom OAuth app integrations, over HTTP."""

from __future__ import annotations

import copy

import pytest
from flask.testing import FlaskClient
from http_helpers import assert_ok, http_client, make_server, post_form

from mock_server import DATABRICKS_EXAMPLE, MockServer

ACCOUNT = "acc-1234"
BASE = f"/api/2.0/accounts/{ACCOUNT}/oauth2/custom-app-integrations"


@pytest.fixture
def mock() -> MockServer:
    return make_server()


@pytest.fixture
def http(mock: MockServer) -> FlaskClient:
    return http_client(mock)


def create(http: FlaskClient, **overrides) -> dict:
    body = copy.deepcopy(DATABRICKS_EXAMPLE)
    body.update(overrides)
    response = http.post(BASE, json=body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def refresh_as(http, mock, made: dict, token: str):
    params = {"grant_type": "refresh_token", "refresh_token": token}
    auth = (made["client_id"], made["client_secret"])
    return post_form(http, "/token", params, auth=auth, method="post")


def test_create_with_the_documented_example(http, mock):
    """Databricks API: the documentation's example creates a confidential client."""
    made = create(http)

    assert set(made) == {"integration_id", "client_id", "client_secret"}
    client = mock.client(made["client_id"])
    assert client is not None and client.confidential
    assert client.policy.access_ttl == 3600


def test_public_integration_has_no_secret(http):
    """Databricks API: a public integration gets no client_secret."""
    made = create(http, confidential=False)

    assert "client_secret" not in made


def test_get_and_list(http):
    """Databricks API: get returns one app, list the account's apps."""
    made = create(http)
    other = http.post(
        "/api/2.0/accounts/other/oauth2/custom-app-integrations",
        json={"name": "elsewhere"},
    )
    assert other.status_code == 200

    got = http.get(f"{BASE}/{made['integration_id']}").get_json()
    listed = http.get(BASE).get_json()["apps"]

    assert got["client_id"] == made["client_id"]
    assert got["name"] == DATABRICKS_EXAMPLE["name"]
    assert got["token_access_policy"] == DATABRICKS_EXAMPLE["token_access_policy"]
    assert "client_secret" not in got
    assert [app["integration_id"] for app in listed] == [made["integration_id"]]


def test_update_policy_applies_to_the_next_tokens(http, mock):
    """Databricks API: an updated policy shapes the client's next tokens."""
    made = create(http)
    client = mock.client(made["client_id"])
    rt0 = mock.authority.start_grant(client, "u", ["all-apis"]).refresh_token
    policy = {
        "access_token_ttl_in_minutes": 10,
        "refresh_token_ttl_in_minutes": 20,
        "enable_single_use_refresh_tokens": True,
    }

    response = http.patch(
        f"{BASE}/{made['integration_id']}", json={"token_access_policy": policy}
    )

    assert response.status_code == 200
    body = assert_ok(refresh_as(http, mock, made, rt0))
    assert body["expires_in"] == 600
    got = http.get(f"{BASE}/{made['integration_id']}").get_json()
    assert got["token_access_policy"]["access_token_ttl_in_minutes"] == 10
    # The new idle TTL (20 min) applies to the successor just issued.
    mock.clock.advance(21 * 60)
    again = refresh_as(http, mock, made, body["refresh_token"])
    assert again.status_code == 400


def test_update_to_multi_use_tokens_stops_rotation(http, mock):
    """Databricks API: turning single use off stops rotation at once."""
    made = create(http)
    client = mock.client(made["client_id"])
    rt0 = mock.authority.start_grant(client, "u", ["all-apis"]).refresh_token
    policy = dict(DATABRICKS_EXAMPLE["token_access_policy"])
    policy["enable_single_use_refresh_tokens"] = False

    http.patch(f"{BASE}/{made['integration_id']}", json={"token_access_policy": policy})

    first = assert_ok(refresh_as(http, mock, made, rt0))
    assert first["refresh_token"] == rt0
    assert_ok(refresh_as(http, mock, made, rt0))


@pytest.mark.parametrize(
    ("policy", "field", "value", "allowed"),
    [
        ({"access_token_ttl_in_minutes": 1}, "access_token_ttl_in_minutes", "1", "5"),
        (
            {"refresh_token_ttl_in_minutes": 999999},
            "refresh_token_ttl_in_minutes",
            "999999",
            "129600",
        ),
        (
            {"enable_single_use_refresh_tokens": "yes"},
            "enable_single_use_refresh_tokens",
            '"yes"',
            "true or false",
        ),
    ],
)
def test_bad_policy_is_400_naming_field_value_range(
    http, mock, policy, field, value, allowed
):
    """DESIGN policy: bad input is refused naming the field, value and range."""
    made = create(http)
    before = mock.client(made["client_id"]).policy_json

    for response in (
        http.post(BASE, json={"name": "x", "token_access_policy": policy}),
        http.patch(
            f"{BASE}/{made['integration_id']}", json={"token_access_policy": policy}
        ),
    ):
        assert response.status_code == 400
        body = response.get_json()
        assert body["error_code"] == "INVALID_PARAMETER_VALUE"
        assert field in body["message"]
        assert value in body["message"]
        assert allowed in body["message"]

    assert mock.client(made["client_id"]).policy_json == before


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b"[" * 50_000])
def test_malformed_body_is_400(http, body):
    """Databricks API: a body that is not a JSON object is 400, never 500."""
    response = http.post(BASE, data=body, content_type="application/json")

    assert response.status_code == 400
    assert response.get_json()["error_code"] == "MALFORMED_REQUEST"


def test_delete_removes_the_client(http, mock):
    """Databricks API: delete removes the integration and its client."""
    made = create(http)
    rt0 = mock.authority.start_grant(
        mock.client(made["client_id"]), "u", ["all-apis"]
    ).refresh_token

    response = http.delete(f"{BASE}/{made['integration_id']}")

    assert response.status_code == 200
    assert http.get(f"{BASE}/{made['integration_id']}").status_code == 404
    assert mock.client(made["client_id"]) is None
    refused = refresh_as(http, mock, made, rt0)
    assert refused.status_code in {400, 401}
    assert refused.get_json()["error"] == "invalid_client"


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_unknown_integration_is_404(http, method):
    """Databricks API: an unknown integration id is 404 RESOURCE_DOES_NOT_EXIST."""
    response = getattr(http, method)(f"{BASE}/no-such-id", json={})

    assert response.status_code == 404
    assert response.get_json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_integration_of_another_account_is_404(http):
    """Databricks API: an integration is only visible under its own account."""
    made = create(http)

    response = http.get(
        "/api/2.0/accounts/other/oauth2/custom-app-integrations/"
        + made["integration_id"]
    )

    assert response.status_code == 404


def test_default_clients_are_not_listed(http, mock):
    """Databricks API: the three start-up clients belong to no account."""
    assert http.get(BASE).get_json() == {"apps": []}
    assert mock.client("rotcert-client") is not None
