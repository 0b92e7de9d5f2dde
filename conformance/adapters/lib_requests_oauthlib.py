"""requests-oauthlib: ``OAuth2Session`` with automatic refresh, unmodified.

Configured the way its documentation shows: one session per action, built from
the stored token with ``auto_refresh_url`` and a ``token_updater`` that writes the
token file; the client authenticates with its registered method (Basic through
the ``client_id``/``client_secret`` request arguments, or the body through
``auto_refresh_kwargs``). The session is given the scope the app asks for, as
apps configure one client for login and refresh.
"""

from __future__ import annotations

import json
from typing import Any

import requests
from oauthlib.oauth2 import OAuth2Error, WebApplicationClient
from requests_oauthlib import OAuth2Session

from .glue import TERMINAL_ERRORS, TokenFile, fan_out, insecure_loopback, summarize
from .protocol import ActionFailed, AdapterEnv, PythonAdapter, ReauthRequired

__all__ = ["RequestsOAuthlibAdapter"]

TIMEOUT = 10.0


class RequestsOAuthlibAdapter(PythonAdapter):
    name = "requests-oauthlib"

    def __init__(self, env: AdapterEnv) -> None:
        super().__init__(env)
        insecure_loopback()
        self.tokens = TokenFile(env.state_dir)

    def _basic(self) -> bool:
        env = self.env
        return env.client_auth_method == "client_secret_basic" and bool(
            env.client_secret
        )

    def _session(self, token: dict[str, Any] | None = None, **extra) -> OAuth2Session:
        env = self.env
        body: dict[str, str] = {}
        if env.client_auth_method == "client_secret_post" and env.client_secret:
            body = {"client_id": env.client_id, "client_secret": env.client_secret}
        elif not self._basic():
            body = {"client_id": env.client_id}
        return OAuth2Session(
            env.client_id,
            token=token,
            scope=env.scopes or None,
            redirect_uri=env.redirect_uri,
            auto_refresh_url=env.token_endpoint,
            auto_refresh_kwargs=body,
            token_updater=self.tokens.save,
            **extra,
        )

    def seed(self, token_response: dict[str, Any]) -> dict[str, Any]:
        # What fetch_token would have kept: the parsed response, with expires_at.
        client = WebApplicationClient(self.env.client_id)
        token = client.parse_request_body_response(
            json.dumps(token_response), scope=self.env.scopes or None
        )
        self.tokens.save(dict(token))
        return {"stored": True}

    def login(self) -> dict[str, Any]:
        env = self.env
        session = self._session(pkce="S256")
        url, _ = session.authorization_url(env.authorization_endpoint)
        answer = requests.get(url, allow_redirects=False, timeout=TIMEOUT)
        location = answer.headers.get("Location")
        if not location:
            raise ActionFailed(
                f"the authorization endpoint answered {answer.status_code}"
            )
        token = session.fetch_token(
            env.token_endpoint,
            authorization_response=location,
            client_secret=env.client_secret,
            include_client_id=not self._basic() or None,
            timeout=TIMEOUT,
        )
        self.tokens.save(dict(token))
        return {"stored": True}

    def call(self) -> dict[str, Any]:
        token = self.tokens.load()
        if token is None:
            raise ReauthRequired("no stored tokens: the user must log in")
        presented = token.get("refresh_token")
        session = self._session(token)
        auth = (
            {"client_id": self.env.client_id, "client_secret": self.env.client_secret}
            if self._basic()
            else {}
        )

        def one() -> int:
            try:
                return session.get(
                    self.env.resource, timeout=TIMEOUT, **auth
                ).status_code
            except OAuth2Error as exc:
                if exc.error in TERMINAL_ERRORS:
                    self.tokens.clear_if(presented)
                    raise ReauthRequired(f"refresh refused: {exc.error}") from exc
                raise

        return summarize(fan_out(self.env.concurrency, one))
