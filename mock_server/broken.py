"""Deliberately broken modes and injected faults, switched on through the admin API.

Broken modes exist to prove the conformance suite can fail: each one reproduces a
server bug class from the field, and each must be caught by the scenarios that
claim to check it. Faults are for testing clients: they break one response, not
the server's rules.
"""

from __future__ import annotations

__all__ = ["BROKEN_MODES", "BROKEN_MODES_SETTING", "FAULT_KINDS", "FAULTS_SETTING"]

BROKEN_MODES_SETTING = "broken_modes"
FAULTS_SETTING = "faults"

BROKEN_MODES: dict[str, str] = {
    "no_rotation": (
        "a refresh returns the presented refresh token again although the policy "
        "declares single-use tokens"
    ),
    "reuse_accepted": "a consumed refresh token is accepted as if it were fresh",
    "family_not_revoked": "reuse is rejected but the rest of the family lives on",
    "absolute_lifetime_ignored": "the absolute session lifetime is never enforced",
    "idle_ttl_ignored": "a refresh token's idle TTL is never enforced",
    "non_atomic_rotation": (
        "the check and the commit of a rotation run in separate transactions, so "
        "parallel refreshes of one token can all succeed"
    ),
    "consume_on_failed_client_auth": (
        "a refresh whose client authentication fails still consumes the token"
    ),
    "wrong_error_code": (
        "an invalid refresh token is answered 401 invalid_token instead of the "
        "declared error"
    ),
    "missing_no_store": "token responses lack Cache-Control: no-store",
}

FAULT_KINDS: dict[str, str] = {
    "drop_response_after_commit": (
        "the refresh is committed, then the response is lost: the server answers "
        "502 with no tokens (or, with hang_seconds, stalls first)"
    ),
    "http_500": "the token endpoint answers 500 before doing anything",
    "delay": "the token endpoint waits delay_ms before handling the request",
    "omit_refresh_token": "a successful refresh response leaves out refresh_token",
    "extra_unknown_fields": "token responses carry members no RFC defines",
    "lowercase_token_type": "token_type is 'bearer' instead of 'Bearer'",
    "resource_invalid_token": (
        "the protected resource answers 401 invalid_token even to a live token"
    ),
}
