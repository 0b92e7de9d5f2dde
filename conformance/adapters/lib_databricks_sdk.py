"""Databricks SDK for Python: its own user-to-machine OAuth, unmodified.

The client is what an application gets from ``Config(auth_type=
"external-browser")``: the SDK reads the host metadata
(``/.well-known/databricks-config``) and the OIDC discovery document under
``/oidc``, loads its token cache (``~/.config/databricks-sdk-py/oauth``),
refreshes a cached token that has expired, and falls back to its browser login
(PKCE, a listener on ``http://localhost:8020``) when there is no usable token.
Requests go through the SDK's own ``ApiClient`` to ``/api/2.0/resource``.

What the adapter supplies, and nothing more:

- ``HOME`` is the state directory while an action runs, so the SDK's token cache
  lives there and survives from one action ("process") to the next.
- The browser. A stdlib ``webbrowser`` entry registered as preferred stands in
  for the user: in ``login`` it opens the authorization URL (the mock approves at
  once) and delivers the redirect to the SDK's own listener; in ``call`` the SDK
  opening a browser *is* its conclusion that the user must log in again, so the
  action reports exactly that (exit 3).
- ``seed`` writes the cache file the SDK's login would have written: the token
  parsed as ``retrieve_token`` parses a response, saved through ``TokenCache``
  under the key ``external_browser`` uses.

Plain ``http://`` needs no switch: the SDK adds ``https://`` only to a host
given without a scheme.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
import webbrowser
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from databricks.sdk import oauth as sdk_oauth
from databricks.sdk.core import ApiClient, Config
from databricks.sdk.errors import Unauthenticated

from .glue import fan_out, summarize
from .protocol import ActionFailed, AdapterEnv, PythonAdapter, ReauthRequired

__all__ = ["DatabricksSdkAdapter"]

TIMEOUT = 10.0
RESOURCE_PATH = "/api/2.0/resource"
# Where external_browser listens; the SDK fixes it.
REDIRECT_URL = "http://localhost:8020"
BROWSER_NAME = "rotcert-headless"
SDK_LOGGER = "databricks.sdk"


class LoginRequested(Exception):
    """The SDK opened its browser login while the adapter was not logging in.

    The SDK wraps it (``DefaultCredentials`` turns any exception into a
    ValueError), so the browser also notes the request in ``_mode.asked``.
    """


class _Mode(threading.local):
    approve = False
    asked = False


_mode = _Mode()


class HeadlessBrowser(webbrowser.BaseBrowser):
    """The user at the browser: approves in ``login``, is absent otherwise."""

    def open(self, url: str, new: int = 0, autoraise: bool = True) -> bool:
        if not _mode.approve:
            _mode.asked = True
            raise LoginRequested(url)
        # The SDK starts its listener only after the browser returns, as a real
        # user's click comes later too.
        threading.Thread(
            target=_approve, args=(url,), name="rotcert-browser", daemon=True
        ).start()
        return True


def _approve(url: str) -> None:
    answer = requests.get(url, allow_redirects=False, timeout=TIMEOUT)
    location = answer.headers.get("Location")
    if not location:
        # Unblock the SDK's listener with an error instead of leaving it waiting.
        location = (
            f"{REDIRECT_URL}/?error=access_denied&error_description="
            f"authorization+endpoint+answered+{answer.status_code}"
        )
    for _ in range(200):
        try:
            requests.get(location, timeout=TIMEOUT)
            return
        except requests.ConnectionError:
            time.sleep(0.05)


class _Registration:
    lock = threading.Lock()
    done = False


def _register_browser() -> None:
    with _Registration.lock:
        if not _Registration.done:
            webbrowser.register(
                BROWSER_NAME, None, HeadlessBrowser(BROWSER_NAME), preferred=True
            )
            _Registration.done = True


@contextmanager
def _browser(approve: bool) -> Iterator[None]:
    _register_browser()
    before, _mode.approve, _mode.asked = _mode.approve, approve, False
    try:
        yield
    finally:
        _mode.approve = before


class _Home:
    """HOME pointed at one state directory while any action uses it.

    In-process "processes" are threads of one process, and HOME is process-wide:
    actions sharing a state directory share the override; two different state
    directories at once cannot be honoured and are refused.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._saved: str | None = None

    @contextmanager
    def at(self, state_dir: Path) -> Iterator[None]:
        wanted = str(Path(state_dir).resolve())
        with self._lock:
            if self._users and os.environ.get("HOME") != wanted:
                raise ActionFailed(
                    "two state directories are in use at once in one process; the "
                    "Databricks SDK keeps its token cache under HOME, which is "
                    "process-wide: run one scenario at a time"
                )
            if not self._users:
                self._saved = os.environ.get("HOME")
                os.environ["HOME"] = wanted
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if not self._users:
                    if self._saved is None:
                        os.environ.pop("HOME", None)
                    else:
                        os.environ["HOME"] = self._saved


_home = _Home()


class _SdkLog(logging.Handler):
    """The SDK's own words in this thread (why it gave up on its cached token)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.messages.append(record.getMessage())


@contextmanager
def _sdk_log() -> Iterator[_SdkLog]:
    handler = _SdkLog()
    logger = logging.getLogger(SDK_LOGGER)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def _cache_scopes(scopes: list[str]) -> list[str]:
    """The scopes external_browser keys its cache on: Config's parsed scopes
    (sorted, deduplicated, default all-apis) plus offline_access."""
    parsed = sorted(set(scopes)) or ["all-apis"]
    return parsed if "offline_access" in parsed else [*parsed, "offline_access"]


class _Stored:
    """What ``TokenCache.save`` reads from credentials, for a token just received."""

    def __init__(self, token: sdk_oauth.Token) -> None:
        self.token = token

    def as_dict(self) -> dict[str, Any]:
        return {"token": self.token.as_dict()}


class DatabricksSdkAdapter(PythonAdapter):
    name = "databricks-sdk"

    def __init__(self, env: AdapterEnv) -> None:
        super().__init__(env)
        self.host = env.issuer.rstrip("/")

    def _config(self) -> Config:
        env = self.env
        return Config(
            host=self.host,
            auth_type="external-browser",
            client_id=env.client_id,
            client_secret=env.client_secret or None,
            scopes=env.scopes or None,
            http_timeout_seconds=TIMEOUT,
            retry_timeout_seconds=int(TIMEOUT),
        )

    def seed(self, token_response: dict[str, Any]) -> dict[str, Any]:
        env = self.env
        # As retrieve_token parses a token response after the code exchange.
        expiry = dt.datetime.now() + dt.timedelta(
            seconds=int(token_response["expires_in"])
        )
        token = sdk_oauth.Token(
            access_token=token_response["access_token"],
            refresh_token=token_response.get("refresh_token"),
            token_type=token_response["token_type"],
            expiry=expiry,
        )
        # TokenCache.save() writes credentials.as_dict(); SessionCredentials'
        # as_dict() would refresh a token that expires within 40 s (the 1 s tokens
        # of a command run), so the same document is handed over without that.
        credentials = _Stored(token)
        # The key external_browser computes; save() never reads the endpoints.
        cache = sdk_oauth.TokenCache(
            host=self.host,
            oidc_endpoints=None,  # type: ignore[arg-type]
            client_id=env.client_id,
            redirect_url=REDIRECT_URL,
            client_secret=env.client_secret,
            scopes=_cache_scopes(env.scopes),
        )
        with _home.at(env.state_dir):
            cache.save(credentials)  # type: ignore[arg-type]
        return {"stored": True}

    def login(self) -> dict[str, Any]:
        with _home.at(self.env.state_dir), _browser(approve=True):
            config = self._config()
        # Where the SDK found the OIDC endpoints (host metadata points there).
        return {"stored": True, "discovery_url": config.discovery_url}

    def call(self) -> dict[str, Any]:
        with _home.at(self.env.state_dir), _browser(approve=False), _sdk_log() as log:
            try:
                config = self._config()
            except Exception:
                if not _mode.asked:
                    raise
                said = "; ".join(log.messages[-1:]) or "its token cache is empty"
                raise ReauthRequired(
                    f"the SDK started its browser login: {said}"
                ) from None
            client = ApiClient(config)

            def one() -> int:
                try:
                    client.do("GET", RESOURCE_PATH)
                except Unauthenticated:
                    return 401
                return 200

            return summarize(fan_out(self.env.concurrency, one))
