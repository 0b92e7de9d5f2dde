"""Client binding, client authentication and scope on refresh."""

from __future__ import annotations

import pytest

from conformance.context import ServerScenario, cannot_check, not_applicable
from conformance.scenarios import ROTATION

EXTRA_SCOPE = "rotcert-never-granted"


@pytest.mark.rotcert(
    id="S-CLIENT-01",
    requirement="STD-RT-19",
    profiles=("rfc9700", "oauth21"),
    catches=("wrong_error_code",),
)
def test_token_of_another_client_is_rejected_and_not_consumed(
    server_scenario: ServerScenario,
):
    """Another client's refresh token is rejected and stays usable by its owner."""
    s = server_scenario
    other = s.target.second_client
    if other is None:
        cannot_check("no second client (--rotcert-second-client-id)")
    family = s.new_family()
    token = family.refresh_token
    reply = s.refresh(token, client=other, step="a second client presents the token")
    s.expect_rejected(reply, "a refresh token presented by another client", "STD-RT-19")
    if reply.error not in ("invalid_grant", "invalid_request"):
        s.fail(
            "STD-RT-19",
            f"another client's token should give invalid_grant; got {reply.error}",
        )
    s.rotate(family, "the owner still refreshes with the same token")


@pytest.mark.rotcert(
    id="S-AUTH-01",
    requirement="STD-RT-13, K5",
    profiles=ROTATION,
    catches=("consume_on_failed_client_auth",),
)
def test_failed_client_authentication_does_not_consume(
    server_scenario: ServerScenario,
):
    """A refresh with a wrong client secret gets 401 invalid_client and leaves the
    token usable."""
    s = server_scenario
    client = s.target.client
    if client.client_secret is None:
        not_applicable("the client is public: there is no secret to get wrong")
    family = s.new_family()
    token = family.refresh_token
    wrong = (client.client_id, client.client_secret + "-wrong")
    reply = s.refresh(
        token, auth_override=wrong, step="refresh with a wrong client secret (Basic)"
    )
    if s.succeeded(reply):
        s.fail("STD-RT-13", "a refresh with a wrong client secret succeeded")
    if reply.status != 401 or reply.error != "invalid_client":
        s.fail(
            "STD-RT-13",
            "failed Basic authentication must answer 401 invalid_client; got "
            + s.what_happened(reply),
        )
    challenge = (reply.headers or {}).get("WWW-Authenticate", "")
    if not challenge.lower().startswith("basic"):
        s.fail("STD-RT-13", f"401 without a Basic challenge (got {challenge!r})")
    s.rotate(
        family,
        "the same token, now with the right secret, must still work",
        requirement="K5",
    )


def _scopes(s: ServerScenario, family) -> list[str]:
    granted = (family.scope or " ".join(s.target.scopes)).split()
    if not granted:
        cannot_check("the granted scope is unknown (the grant response has none)")
    return granted


@pytest.mark.rotcert(
    id="S-SCOPE-01",
    requirement="STD-RT-27",
    profiles=("oauth21",),
    catches=(),
)
def test_scope_broadening_is_rejected(server_scenario: ServerScenario):
    """Asking for a scope never granted gets invalid_scope (or, per RFC 6749 §3.3,
    a narrower grant) — never the extra scope."""
    s = server_scenario
    family = s.new_family()
    granted = _scopes(s, family)
    wider = " ".join([*granted, EXTRA_SCOPE])
    reply = s.refresh(family.refresh_token, scope=wider, step="ask for a wider scope")
    if s.succeeded(reply):
        returned = str((reply.json or {}).get("scope", "")).split()
        if EXTRA_SCOPE in returned or not returned:
            s.fail(
                "STD-RT-27",
                "the refresh granted (or did not deny) a scope never granted",
            )
        return
    s.expect_error(reply, 400, "invalid_scope", "a broadened scope", "STD-RT-27")


@pytest.mark.rotcert(
    id="S-SCOPE-02",
    requirement="STD-RT-28",
    profiles=("oauth21",),
    catches=(),
)
def test_scope_narrowing_keeps_the_successor_whole(server_scenario: ServerScenario):
    """A narrowed refresh narrows the access token only; the successor refresh
    token keeps the full scope."""
    s = server_scenario
    family = s.new_family()
    granted = _scopes(s, family)
    if len(granted) < 2:
        not_applicable("the grant has a single scope; nothing to narrow")
    body = s.rotate(family, "refresh asking for the first scope only", granted[0])
    returned = str(body.get("scope", granted[0])).split()
    if returned != [granted[0]]:
        s.fail("STD-RT-29", f"asked for {granted[0]!r}, the response says {returned}")
    body = s.rotate(
        family, "refresh the successor asking for the last scope only", granted[-1]
    )
    body = s.rotate(family, "refresh again with no scope: the original scope")
    returned = set(str(body.get("scope", " ".join(granted))).split())
    if returned != set(granted):
        s.fail(
            "STD-RT-28",
            f"the successor lost scope: got {sorted(returned)}, granted "
            f"{sorted(granted)}",
        )
