"""Authlib: the requests ``OAuth2Session``, unmodified.

Configured as its documentation shows: ``token_endpoint`` for automatic refresh,
``update_token`` writing the token file, ``token_endpoint_auth_method`` set to the
registered method, and the scope the app asks for.
"""

from __future__ import annotations

from typing import Any

import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc6749 import OAuth2Token

from .glue import TERMINAL_ERRORS, TokenFile, fan_out, summarize
from .protocol import ActionFailed, AdapterEnv, PythonAdapter, ReauthRequired

__all__ = ["AuthlibAdapter"]

TIMEOUT = 10.0


class AuthlibAdapter(PythonAdapter):
    name = "authlib"

    def __init__(self, env: AdapterEnv) -> None:
        super().__init__(env)
        self.tokens = TokenFile(env.state_dir)

    def _session(self, token: dict[str, Any] | None = None) -> OAuth2Session:
        env = self.env
        method = env.client_auth_method if env.client_secret else "none"
        return OAuth2Session(
            env.client_id,
            env.client_secret,
            token_endpoint_auth_method=method,
            scope=env.scope or None,
            redirect_uri=env.redirect_uri,
            token=token,
            token_endpoint=env.token_endpoint,
            update_token=self._update_token,
            code_challenge_method="S256",
            default_timeout=TIMEOUT,
        )

    def _update_token(self, token: dict[str, Any], **_: Any) -> None:
        self.tokens.save(dict(token))

    def seed(self, token_response: dict[str, Any]) -> dict[str, Any]:
        # What fetch_token would have kept: the response with expires_at added.
        self.tokens.save(dict(OAuth2Token.from_dict(dict(token_response))))
        return {"stored": True}

    def login(self) -> dict[str, Any]:
        env = self.env
        session = self._session()
        verifier = generate_token(48)
        url, _ = session.create_authorization_url(
            env.authorization_endpoint, code_verifier=verifier
        )
        answer = requests.get(url, allow_redirects=False, timeout=TIMEOUT)
        location = answer.headers.get("Location")
        if not location:
            raise ActionFailed(
                f"the authorization endpoint answered {answer.status_code}"
            )
        token = session.fetch_token(
            env.token_endpoint, authorization_response=location, code_verifier=verifier
        )
        self.tokens.save(dict(token))
        return {"stored": True}

    def call(self) -> dict[str, Any]:
        token = self.tokens.load()
        if token is None:
            raise ReauthRequired("no stored tokens: the user must log in")
        presented = token.get("refresh_token")
        session = self._session(token)

        def one() -> int:
            try:
                return session.get(self.env.resource).status_code
            except OAuthError as exc:
                if exc.error in TERMINAL_ERRORS:
                    self.tokens.clear_if(presented)
                    raise ReauthRequired(f"refresh refused: {exc.error}") from exc
                raise

        return summarize(fan_out(self.env.concurrency, one))
