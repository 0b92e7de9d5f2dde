"""Authorization codes with PKCE (RFC 7636, S256 only)."""

from __future__ import annotations

import base64
import hashlib
import hmac

from .errors import InvalidGrant, InvalidRequest
from .records import AuthCode, Client
from .rotation import TokenSet
from .server import MockServer
from .tokens import new_token, token_hash

__all__ = ["issue_code", "redeem_code"]

CODE_TTL_SECONDS = 120


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def issue_code(
    server: MockServer,
    client: Client,
    user: str,
    scope: list[str],
    redirect_uri: str | None,
    challenge: str | None,
) -> str:
    value = new_token()
    record = AuthCode(
        code_hash=token_hash(value),
        client_id=client.client_id,
        user=user,
        scope=scope,
        redirect_uri=redirect_uri,
        code_challenge=challenge,
        expires_at=server.clock.now() + CODE_TTL_SECONDS,
    )
    with server.store.transaction() as tx:
        tx.put("code", record.code_hash, record.to_json())
    return value


def redeem_code(server: MockServer, client: Client, form: dict[str, str]) -> TokenSet:
    code = form.get("code")
    if code is None:
        raise InvalidRequest("code is missing.", reason="no_code")

    with server.store.transaction() as tx:
        data = tx.get("code", token_hash(code))
        if data is None:
            raise InvalidGrant("The authorization code is unknown.", reason="bad_code")
        record = AuthCode.from_json(data)
        if record.used:
            raise InvalidGrant("The code was already used.", reason="code_reused")
        # Spend the code whatever happens next: a code is good for one try.
        record.used = True
        tx.put("code", record.code_hash, record.to_json())

    if record.client_id != client.client_id:
        raise InvalidGrant("The code was issued to another client.", reason="bad_code")
    if server.clock.now() >= record.expires_at:
        raise InvalidGrant("The code has expired.", reason="code_expired")
    if (
        record.redirect_uri is not None
        and form.get("redirect_uri") != record.redirect_uri
    ):
        raise InvalidGrant("redirect_uri does not match.", reason="bad_redirect_uri")
    if record.code_challenge is not None:
        verifier = form.get("code_verifier")
        if verifier is None:
            raise InvalidGrant("code_verifier is missing.", reason="pkce_missing")
        if not hmac.compare_digest(s256(verifier), record.code_challenge):
            raise InvalidGrant("code_verifier does not match.", reason="pkce_mismatch")
    elif form.get("code_verifier") is not None:
        # RFC 9700 §4.8.2: a verifier for a code issued without a challenge is a
        # PKCE downgrade attempt and must be refused.
        raise InvalidGrant(
            "code_verifier was sent but the authorization request had no "
            "code_challenge.",
            reason="pkce_downgrade",
        )
    return server.authority.start_grant(client, record.user, record.scope)
