"""RFC 7009 revocation of a refresh token."""

from __future__ import annotations

import pytest

from conformance.context import ServerScenario, cannot_check


@pytest.mark.rotcert(
    id="S-REVOKE-01",
    requirement="STD-RT-45, STD-RT-47",
    profiles=("oauth21",),
    catches=(),
)
def test_revocation_kills_the_family(server_scenario: ServerScenario):
    """Revoking the newest refresh token makes it unusable at once, and (where it
    can be seen) the family's access tokens too."""
    s = server_scenario
    endpoint = s.target.endpoints.revocation
    if not endpoint:
        cannot_check("the target advertises no revocation endpoint")
    family = s.new_family()
    s.rotate(family)
    token, access = family.refresh_token, family.access_token

    form, auth = s.target.client.form_and_auth()
    form.update(token=token, token_type_hint="refresh_token")
    s.step("revoke the newest refresh token (RFC 7009)")
    reply = s.http.post_form(endpoint, form, auth=auth, step="revoke")
    if reply.status != 200:
        s.fail("STD-RT-45", "revocation did not answer 200: " + s.what_happened(reply))
    family.lineage.revoked(token, s.elapsed)

    reply = s.refresh(token, step="refresh with the revoked token")
    s.expect_rejected(reply, "a revoked refresh token", "STD-RT-46")
    if access and s.access_alive(access, "the family's access token") is True:
        s.fail(
            "STD-RT-47",
            "the access token of the revoked grant is still accepted",
        )


@pytest.mark.rotcert(
    id="S-REVOKE-02",
    requirement="STD-RT-51",
    profiles=("oauth21",),
    catches=(),
)
def test_revoking_an_unknown_token_answers_200(server_scenario: ServerScenario):
    """Revoking an unknown token is not an error (RFC 7009 §2.2)."""
    s = server_scenario
    endpoint = s.target.endpoints.revocation
    if not endpoint:
        cannot_check("the target advertises no revocation endpoint")
    form, auth = s.target.client.form_and_auth()
    form["token"] = "rotcert-unknown-token-value-0000000000"
    s.step("revoke a token the server never issued")
    reply = s.http.post_form(endpoint, form, auth=auth, step="revoke unknown")
    if reply.status != 200:
        s.fail(
            "STD-RT-51",
            "revoking an unknown token did not answer 200: " + s.what_happened(reply),
        )
