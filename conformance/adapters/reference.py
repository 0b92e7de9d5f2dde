"""rotcert's own client: correct by default, and deliberately flawed on request.

``reference`` does what the client rules ask (single-flight refresh inside the
process and across processes, the rotated token persisted before use, an omitted
refresh token kept, expiry anchored at receipt, one refresh and retry on 401,
invalid_grant terminal). It is the control that shows every scenario can pass.

Each flaw switches off one of those duties, reproducing a bug class from the
field. ``naive`` keeps the first refresh token; the ``flawed-*`` adapters prove
that every scenario fails the client it claims to catch.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlsplit

import requests

from .glue import TERMINAL_ERRORS, TokenFile, fan_out, summarize
from .protocol import ActionFailed, AdapterEnv, PythonAdapter, ReauthRequired

__all__ = ["FLAWED", "NaiveClient", "ReferenceClient", "flawed_class"]

TIMEOUT = 10.0
LOST_RETRY_PAUSE = 0.2

# name -> (flaw, what the client then does wrong, and where that was seen)
FLAWED: dict[str, tuple[str, str]] = {
    "flawed-drops-omitted": (
        "drop_omitted_refresh_token",
        "stores each refresh response as it is, so a response without "
        "refresh_token leaves none (C3, MCP python-sdk #2270)",
    ),
    "flawed-retry-loop": (
        "retry_rejected_refresh",
        "retries a refused refresh five times in a row (C5, grohe_sense #3)",
    ),
    "flawed-invalid-grant-only": (
        "only_invalid_grant_terminal",
        "treats only invalid_grant as final and retries Databricks' "
        "invalid_request (C5)",
    ),
    "flawed-no-single-flight": (
        "no_single_flight",
        "lets every parallel request refresh on its own (C4, opencode #34074)",
    ),
    "flawed-no-file-lock": (
        "no_file_lock",
        "has no lock across processes sharing one token store (C4, "
        "databricks/cli #6051)",
    ),
    "flawed-load-time-expiry": (
        "relative_expiry",
        "stores expires_in and counts it from every load (C6, requests-oauthlib #434)",
    ),
    "flawed-no-401-refresh": (
        "no_refresh_on_401",
        "never refreshes when the resource answers 401 invalid_token (C6)",
    ),
    "flawed-401-loop": (
        "refresh_on_every_401",
        "refreshes and retries on every 401, four times per request (STD-RT-C12)",
    ),
    "flawed-rt-to-resource": (
        "refresh_token_as_bearer",
        "sends the refresh token to the resource as its bearer token (STD-RT-C08)",
    ),
    "flawed-broad-scope": (
        "request_configured_scope",
        "asks for its configured scope on every refresh, also when less was "
        "granted (STD-RT-C03)",
    ),
    "flawed-two-auth": (
        "two_auth_methods",
        "sends the client secret in a Basic header and in the body (STD-RT-C05)",
    ),
    "flawed-strict-token-type": (
        "strict_token_type",
        "refuses a token response whose token_type is not exactly 'Bearer' "
        "(STD-RT-C10)",
    ),
}


def _basic(client_id: str, secret: str) -> str:
    # RFC 6749 §2.3.1: form-encode both parts before the Basic encoding.
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(pair).decode()


class ReferenceClient(PythonAdapter):
    """A small, correct OAuth client over requests."""

    name = "reference"
    flaws: frozenset[str] = frozenset()

    def __init__(self, env: AdapterEnv) -> None:
        super().__init__(env)
        self.tokens = TokenFile(env.state_dir)
        self.http = requests.Session()
        self._single_flight = threading.Lock()

    # ---------------------------------------------------------------- actions

    def seed(self, token_response: dict[str, Any]) -> dict[str, Any]:
        self.tokens.save(self._stored(token_response, previous=None))
        return {"stored": True}

    def login(self) -> dict[str, Any]:
        env = self.env
        verifier = secrets.token_urlsafe(48)
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        state = secrets.token_urlsafe(16)
        reply = self.http.get(
            env.authorization_endpoint,
            params={
                "response_type": "code",
                "client_id": env.client_id,
                "redirect_uri": env.redirect_uri,
                "scope": env.scope,
                "state": state,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            },
            allow_redirects=False,
            timeout=TIMEOUT,
        )
        query = parse_qs(urlsplit(reply.headers.get("Location", "")).query)
        if query.get("state") != [state] or "code" not in query:
            raise ActionFailed(f"the authorization endpoint answered {query}")
        form = {
            "grant_type": "authorization_code",
            "code": query["code"][0],
            "redirect_uri": env.redirect_uri,
            "code_verifier": verifier,
        }
        answer = self._post_token(form)
        if answer.status_code != 200:
            raise ActionFailed(f"the code exchange answered {answer.status_code}")
        self.tokens.save(self._stored(answer.json(), previous=None))
        return {"stored": True}

    def call(self) -> dict[str, Any]:
        return summarize(fan_out(self.env.concurrency, self._one_request))

    # --------------------------------------------------------------- requests

    def _one_request(self) -> int:
        token = self._usable_token()
        status = self._get_resource(token)
        if status != 401 or "no_refresh_on_401" in self.flaws:
            return status
        tries = 4 if "refresh_on_every_401" in self.flaws else 1
        for _ in range(tries):
            # Refresh only if nobody replaced the refused access token meanwhile.
            token = self._usable_token(refused=token["access_token"])
            status = self._get_resource(token)
            if status != 401:
                break
        return status

    def _get_resource(self, token: dict[str, Any]) -> int:
        bearer = token["access_token"]
        if "refresh_token_as_bearer" in self.flaws:
            bearer = token.get("refresh_token") or bearer
        reply = self.http.get(
            self.env.resource,
            headers={"Authorization": f"Bearer {bearer}"},
            timeout=TIMEOUT,
        )
        return reply.status_code

    @contextmanager
    def _coordinated(self) -> Iterator[None]:
        """One refresh at a time: among this process's threads, then among all
        processes that share the state directory."""
        with ExitStack() as stack:
            if "no_single_flight" not in self.flaws:
                stack.enter_context(self._single_flight)
                if "no_file_lock" not in self.flaws:
                    stack.enter_context(self.tokens.locked())
            yield

    def _usable_token(self, refused: str | None = None) -> dict[str, Any]:
        with self._coordinated():
            # Read under the lock: another thread or process may have refreshed.
            token = self._load()
            if token is None:
                raise ReauthRequired("no stored tokens: the user must log in")
            if refused is None and not self._expired(token):
                return token
            if refused is not None and token["access_token"] != refused:
                return token
            return self._refresh(token)

    def _refresh(self, token: dict[str, Any]) -> dict[str, Any]:
        presented = token.get("refresh_token")
        if not presented:
            raise ReauthRequired("no refresh token stored: the user must log in")
        form = {"grant_type": "refresh_token", "refresh_token": presented}
        if "request_configured_scope" in self.flaws and self.env.scope:
            form["scope"] = self.env.scope
        attempts = 0
        while True:
            attempts += 1
            try:
                answer: requests.Response | None = self._post_token(form)
            except requests.RequestException:
                answer = None
            if answer is None or answer.status_code >= 500:
                # The refresh may have committed before the answer was lost: one
                # retry with the same token is allowed (STD-RT-C15).
                if attempts < 2:
                    time.sleep(LOST_RETRY_PAUSE)
                    continue
                status = "no answer" if answer is None else answer.status_code
                raise ActionFailed(f"the token endpoint answered {status}")
            body = _json_object(answer)
            if answer.status_code == 200 and body.get("access_token"):
                return self._save_refreshed(token, body)
            error = str(body.get("error") or f"HTTP {answer.status_code}")
            if "retry_rejected_refresh" in self.flaws and attempts < 6:
                continue
            final = error in TERMINAL_ERRORS
            if "only_invalid_grant_terminal" in self.flaws:
                final = error == "invalid_grant"
                if not final and attempts < 3:
                    continue
            if final:
                self.tokens.clear_if(presented)
                raise ReauthRequired(f"the token endpoint refused the refresh: {error}")
            raise ActionFailed(f"the token endpoint refused the refresh: {error}")

    def _post_token(self, form: dict[str, str]) -> requests.Response:
        env = self.env
        headers = {"Accept": "application/json"}
        form = dict(form)
        method = env.client_auth_method
        if "two_auth_methods" in self.flaws and env.client_secret:
            headers["Authorization"] = _basic(env.client_id, env.client_secret)
            form.update(client_id=env.client_id, client_secret=env.client_secret)
        elif method == "client_secret_basic" and env.client_secret:
            headers["Authorization"] = _basic(env.client_id, env.client_secret)
        elif method == "client_secret_post" and env.client_secret:
            form.update(client_id=env.client_id, client_secret=env.client_secret)
        else:
            form["client_id"] = env.client_id
        return self.http.post(
            env.token_endpoint, data=form, headers=headers, timeout=TIMEOUT
        )

    # ----------------------------------------------------------------- tokens

    def _stored(
        self, body: dict[str, Any], previous: dict[str, Any] | None
    ) -> dict[str, Any]:
        token_type = str(body.get("token_type", ""))
        wanted = token_type == "Bearer"
        if "strict_token_type" not in self.flaws:
            wanted = token_type.lower() == "bearer"
        if not wanted:
            raise ActionFailed(f"unexpected token_type {token_type!r}")
        stored: dict[str, Any] = {
            "access_token": body["access_token"],
            "token_type": token_type,
            "scope": body.get("scope", (previous or {}).get("scope")),
        }
        issued = body.get("refresh_token")
        old = (previous or {}).get("refresh_token")
        if previous is None or "drop_omitted_refresh_token" in self.flaws:
            stored["refresh_token"] = issued
        elif "keep_first_refresh_token" in self.flaws:
            stored["refresh_token"] = old
        else:
            stored["refresh_token"] = issued or old
        expires_in = body.get("expires_in")
        if isinstance(expires_in, (int, float)):
            if "relative_expiry" in self.flaws:
                stored["expires_in"] = expires_in
            else:
                # Anchored at receipt: a token restored later is not fresh.
                stored["expires_at"] = time.time() + expires_in
        return stored

    def _save_refreshed(
        self, token: dict[str, Any], body: dict[str, Any]
    ) -> dict[str, Any]:
        stored = self._stored(body, previous=token)
        self.tokens.save(stored)
        return stored

    def _load(self) -> dict[str, Any] | None:
        token = self.tokens.load()
        if token is not None and "relative_expiry" in self.flaws:
            if "expires_in" in token:
                token["expires_at"] = time.time() + token["expires_in"]
        return token

    def _expired(self, token: dict[str, Any]) -> bool:
        expires_at = token.get("expires_at")
        return expires_at is not None and time.time() >= float(expires_at)


def _json_object(answer: requests.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class NaiveClient(ReferenceClient):
    """Keeps the first refresh token forever: stores each new access token but
    never the rotated refresh token (bug class C1: Authlib #548, Lightdash
    #22846)."""

    name = "naive"
    flaws = frozenset({"keep_first_refresh_token"})


def flawed_class(name: str) -> type[ReferenceClient]:
    """The reference client with one flaw switched on, by registry name."""
    flaw, description = FLAWED[name]
    return type(
        "Flawed" + "".join(part.title() for part in flaw.split("_")),
        (ReferenceClient,),
        {"name": name, "flaws": frozenset({flaw}), "__doc__": description},
    )
