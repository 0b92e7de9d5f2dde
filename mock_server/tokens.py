"""Token values: random, stored only as hashes, shown only as fingerprints."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets

from cryptography.fernet import Fernet, InvalidToken

__all__ = ["new_token", "token_hash", "fingerprint", "same_secret", "seal", "unseal"]

# 32 random bytes: 256 bits, above RFC 6749 §10.10's 128-bit floor and OAuth 2.1's
# recommended 160 bits.
TOKEN_BYTES = 32


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def fingerprint(value: str) -> str:
    """A short, stable name for a token that reveals nothing usable about it."""
    return "fp:" + token_hash(value)[:10]


def same_secret(presented: str, stored_hash: str) -> bool:
    """Compare a presented secret with a stored hash in constant time."""
    return hmac.compare_digest(token_hash(presented), stored_hash)


def _key_from(predecessor: str) -> bytes:
    digest = hashlib.sha256(b"rotcert-grace\x00" + predecessor.encode()).digest()
    return base64.urlsafe_b64encode(digest)


def seal(predecessor: str, response: dict) -> str:
    """Encrypt a token response under a key only the predecessor's holder can derive.

    The store keeps no token in clear; a replay inside grace that must return the
    same successor recovers it from the presented predecessor.
    """
    return (
        Fernet(_key_from(predecessor)).encrypt(json.dumps(response).encode()).decode()
    )


def unseal(predecessor: str, sealed: str) -> dict | None:
    try:
        plain = Fernet(_key_from(predecessor)).decrypt(sealed.encode())
    except InvalidToken:
        return None
    return json.loads(plain)
