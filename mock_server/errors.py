"""OAuth errors: one class per RFC 6749 §5.2 code (plus RFC 6750 and RFC 7009).

Views and the rotation state machine raise these; the app turns them into the JSON
response in one place (``app.render_oauth_error``).
"""

from __future__ import annotations

__all__ = [
    "OAuthError",
    "InvalidRequest",
    "InvalidClient",
    "InvalidGrant",
    "UnauthorizedClient",
    "UnsupportedGrantType",
    "InvalidScope",
    "UnsupportedTokenType",
    "InvalidToken",
    "ServerError",
]


class OAuthError(Exception):
    """An error the server answers with; ``reason`` is for the event log only."""

    error = "server_error"
    status = 400

    def __init__(
        self,
        description: str | None = None,
        *,
        reason: str | None = None,
        family_id: str | None = None,
        generation: int | None = None,
    ) -> None:
        super().__init__(description or self.error)
        self.description = description
        self.reason = reason or self.error
        self.family_id = family_id
        self.generation = generation

    def body(self) -> dict[str, str]:
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    error = "invalid_client"
    challenge = False

    def with_challenge(self) -> InvalidClient:
        """Mark that the client used the Authorization header: the answer must be
        401 with a Basic challenge (RFC 6749 §5.2)."""
        self.challenge = True
        self.status = 401
        return self


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class InvalidScope(OAuthError):
    error = "invalid_scope"


class UnsupportedTokenType(OAuthError):
    error = "unsupported_token_type"


class InvalidToken(OAuthError):
    """RFC 6750 §3.1: the resource server's answer to an unusable access token."""

    error = "invalid_token"
    status = 401


class ServerError(OAuthError):
    error = "server_error"
    status = 500
