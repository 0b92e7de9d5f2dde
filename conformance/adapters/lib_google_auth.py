"""google-auth: ``google.oauth2.credentials.Credentials`` with a custom
``token_uri``, used through ``AuthorizedSession``, unmodified.

Stored the way google-auth stores user credentials (``to_json`` /
``from_authorized_user_info``), with the scopes the app asked for, as
google-auth-oauthlib's flow records them. Two traps for a custom token_uri are
worked around, not measured: ``from_authorized_user_info`` always replaces the
stored ``token_uri`` with Google's endpoint, and ``with_token_uri`` returns a
copy without the expiry, so the expiry is carried over by hand. google-auth has
no hook on refresh, so the credentials are written back after each call. It has
no authorization-code flow of its own (google-auth-oauthlib has), so ``login`` is
unsupported.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from google.auth.exceptions import RefreshError
from google.auth.transport.requests import AuthorizedSession
from google.oauth2.credentials import Credentials

from .glue import TERMINAL_ERRORS, TokenFile, fan_out, summarize
from .protocol import AdapterEnv, PythonAdapter, ReauthRequired

__all__ = ["GoogleAuthAdapter"]

TIMEOUT = 10.0


def _error_code(exc: RefreshError) -> str | None:
    data = exc.args[1] if len(exc.args) > 1 else None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return data["error"]
    return None


class GoogleAuthAdapter(PythonAdapter):
    name = "google-auth"

    def __init__(self, env: AdapterEnv) -> None:
        super().__init__(env)
        self.tokens = TokenFile(env.state_dir, "credentials.json")

    def _save(self, credentials: Credentials) -> None:
        self.tokens.save(json.loads(credentials.to_json()))

    def seed(self, token_response: dict[str, Any]) -> dict[str, Any]:
        env = self.env
        expiry = None
        if isinstance(token_response.get("expires_in"), (int, float)):
            now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
            expiry = now + dt.timedelta(seconds=token_response["expires_in"])
        granted = token_response.get("scope")
        credentials = Credentials(
            token=token_response["access_token"],
            refresh_token=token_response.get("refresh_token"),
            token_uri=env.token_endpoint,
            client_id=env.client_id,
            client_secret=env.client_secret,
            scopes=env.scopes or None,
            granted_scopes=granted.split() if isinstance(granted, str) else None,
            expiry=expiry,
        )
        self._save(credentials)
        return {"stored": True}

    def call(self) -> dict[str, Any]:
        info = self.tokens.load()
        if info is None:
            raise ReauthRequired("no stored credentials: the user must log in")
        restored = Credentials.from_authorized_user_info(info)
        credentials = restored.with_token_uri(
            info.get("token_uri") or self.env.token_endpoint
        )
        credentials.expiry = restored.expiry
        presented = credentials.refresh_token
        session = AuthorizedSession(credentials)

        def one() -> int:
            try:
                return session.get(self.env.resource, timeout=TIMEOUT).status_code
            except RefreshError as exc:
                error = _error_code(exc)
                if error in TERMINAL_ERRORS:
                    raise ReauthRequired(f"refresh refused: {error}") from exc
                raise

        results = fan_out(self.env.concurrency, one)
        if credentials.refresh_token != presented or any(r == 200 for r in results):
            self._save(credentials)
        elif any(isinstance(r, ReauthRequired) for r in results):
            self.tokens.clear_if(presented)
        return summarize(results)
