"""Malformed and invalid refresh requests get the errors RFC 6749 §5.2 defines."""

from __future__ import annotations

import pytest

from conformance.context import ServerScenario
from conformance.scenarios import EVERY

GARBAGE = "rotcert-garbage-refresh-token-0123456789"


@pytest.mark.rotcert(
    id="S-ERR-01",
    requirement="STD-RT-21",
    profiles=EVERY,
    catches=("wrong_error_code",),
)
def test_unknown_refresh_token_gets_declared_error(server_scenario: ServerScenario):
    """An unknown refresh token is rejected with the declared error shape."""
    s = server_scenario
    reply = s.refresh(GARBAGE, step="refresh with a token the server never issued")
    s.expect_declared_error(reply, "an unknown refresh token", "STD-RT-21")


@pytest.mark.rotcert(
    id="S-ERR-02",
    requirement="STD-RT-21, STD-RT-12",
    profiles=("oauth21",),
    catches=("wrong_error_code",),
)
def test_unknown_refresh_token_gets_invalid_grant(server_scenario: ServerScenario):
    """OAuth 2.1 keeps RFC 6749's 400 invalid_grant for a bad refresh token,
    whatever a vendor's own shape."""
    s = server_scenario
    reply = s.refresh(GARBAGE, step="refresh with a token the server never issued")
    s.expect_error(reply, 400, "invalid_grant", "an unknown refresh token", "STD-RT-21")


@pytest.mark.rotcert(
    id="S-MAL-01",
    requirement="STD-RT-03, STD-RT-04, STD-RT-06, STD-RT-15, STD-RT-17",
    profiles=EVERY,
    catches=(),
)
def test_malformed_refresh_requests(server_scenario: ServerScenario):
    """Missing, empty and repeated parameters, an unknown grant type and GET are
    refused with the RFC 6749 errors — never a 5xx."""
    s = server_scenario
    family = s.new_family()
    token = family.refresh_token
    url = s.target.endpoints.token
    form, auth = s.target.client.form_and_auth()

    cases = [
        (
            "no refresh_token",
            {**form, "grant_type": "refresh_token"},
            "invalid_request",
        ),
        (
            "empty refresh_token",
            {**form, "grant_type": "refresh_token", "refresh_token": ""},
            "invalid_request",
        ),
        (
            "refresh_token repeated",
            [
                *form.items(),
                ("grant_type", "refresh_token"),
                ("refresh_token", token),
                ("refresh_token", token),
            ],
            "invalid_request",
        ),
        (
            "unknown grant_type",
            {**form, "grant_type": "urn:rotcert:bogus", "refresh_token": token},
            "unsupported_grant_type",
        ),
    ]
    for what, data, error in cases:
        s.step(f"send a refresh request with {what}")
        reply = s.http.post_form(url, data, auth=auth, step=what)
        s.expect_error(reply, 400, error, f"a request with {what}", "STD-RT-12")

    s.step("send the refresh as GET with the token in the query")
    reply = s.http.get(url + "?grant_type=refresh_token", step="GET on the token URL")
    if reply.status is None or reply.status < 400 or reply.status >= 500:
        s.fail(
            "STD-RT-03",
            f"GET on the token endpoint must get a 4xx; got {reply.status}",
        )
    s.rotate(family, "the token survived the malformed requests")
