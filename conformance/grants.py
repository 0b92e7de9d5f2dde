"""Grant sources: each mints a fresh family (a code exchange's tokens) on demand."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shlex
import stat
import threading
from typing import Any, Protocol
from urllib.parse import parse_qs, urlencode, urlsplit

from .commands import run_capped
from .http import HttpClient
from .target import ClientCredentials, ServerTarget

__all__ = [
    "GrantSource",
    "GrantError",
    "AdminGrants",
    "PasswordGrants",
    "AuthCodeGrants",
    "CommandGrants",
    "FileGrants",
    "make_grant_source",
]


class GrantError(Exception):
    """No family could be minted; ``exhausted`` means skip, not fail."""

    def __init__(self, message: str, exhausted: bool = False) -> None:
        super().__init__(message)
        self.exhausted = exhausted


class GrantSource(Protocol):
    name: str

    def mint(
        self, http: HttpClient, client: ClientCredentials, scope: str | None
    ) -> dict[str, Any]: ...


def _token_response(reply, source: str) -> dict[str, Any]:
    if reply.status != 200:
        raise GrantError(
            f"{source} did not mint a grant: "
            + (reply.diagnosis or f"HTTP {reply.status} {reply.text[:200]}")
        )
    body = reply.json_object()
    if not body.get("refresh_token"):
        raise GrantError(
            f"{source} returned no refresh_token (does the client have offline access?)"
        )
    return body


class AdminGrants:
    """A rotcert mock's POST /admin/grants: no browser, no user."""

    name = "admin"

    def __init__(self, admin: str) -> None:
        self.url = admin.rstrip("/") + "/grants"

    def mint(self, http, client, scope):
        body: dict[str, Any] = {"client_id": client.client_id}
        if scope:
            body["scope"] = scope
        reply = http.request("POST", self.url, json=body, step="mint a grant (admin)")
        return _token_response(reply, "the admin API")


class PasswordGrants:
    """The resource-owner password grant (RFC 6749 §4.3), where a server has it."""

    name = "password"

    def __init__(self, token_endpoint: str, username: str, password: str) -> None:
        self.token_endpoint = token_endpoint
        self.username = username
        self.password = password

    def mint(self, http, client, scope):
        http.redactor.add(self.password, "password")
        form, auth = client.form_and_auth()
        form.update(
            grant_type="password", username=self.username, password=self.password
        )
        if scope:
            form["scope"] = scope
        reply = http.post_form(
            self.token_endpoint, form, auth=auth, step="mint a grant (password)"
        )
        return _token_response(reply, "the password grant")


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class AuthCodeGrants:
    """The authorization-code flow with PKCE, for servers that auto-approve."""

    name = "authcode"

    def __init__(self, authorize: str, token: str, redirect_uri: str) -> None:
        self.authorize = authorize
        self.token = token
        self.redirect_uri = redirect_uri

    def mint(self, http, client, scope):
        verifier, challenge = _pkce()
        state = secrets.token_urlsafe(12)
        query = {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": self.redirect_uri,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        if scope:
            query["scope"] = scope
        sep = "&" if "?" in self.authorize else "?"
        reply = http.get(
            self.authorize + sep + urlencode(query), step="authorize (auto-approved)"
        )
        location = reply.headers.get("Location", "") if reply.headers else ""
        params = parse_qs(urlsplit(location).query)
        if reply.status not in (302, 303) or "code" not in params:
            raise GrantError(
                "the authorization endpoint did not redirect back with a code; "
                "the authcode grant source needs a server that approves without a "
                f"user (got {reply.status}, Location {location[:120]!r})"
            )
        if params.get("state") != [state]:
            raise GrantError("the authorization response carried the wrong state")
        code = params["code"][0]
        http.redactor.add(code, "code")
        form, auth = client.form_and_auth()
        form.update(
            grant_type="authorization_code",
            code=code,
            redirect_uri=self.redirect_uri,
            code_verifier=verifier,
        )
        reply = http.post_form(self.token, form, auth=auth, step="exchange the code")
        return _token_response(reply, "the code exchange")


class CommandGrants:
    """A user command that prints one token response (JSON) on stdout."""

    name = "command"

    def __init__(
        self, command: str, endpoints: Any = None, timeout: float = 60.0
    ) -> None:
        try:
            self.command = shlex.split(command)
        except ValueError as exc:
            raise GrantError(
                f"--rotcert-grant-source command:{command} cannot be split into "
                f"words ({exc}); quote it as a shell would"
            ) from None
        if not self.command:
            raise GrantError("--rotcert-grant-source command: names no command")
        self.endpoints = endpoints
        self.timeout = timeout

    def _environment(self, client: ClientCredentials, scope: str | None):
        """What the command may need: which client, which server, which scope."""
        env = dict(os.environ)
        env["ROTCERT_CLIENT_ID"] = client.client_id
        if scope:
            env["ROTCERT_SCOPE"] = scope
        if self.endpoints is not None:
            env["ROTCERT_TOKEN_ENDPOINT"] = self.endpoints.token
            if self.endpoints.authorization:
                env["ROTCERT_AUTHORIZATION_ENDPOINT"] = self.endpoints.authorization
        return env

    def mint(self, http, client, scope):
        name = self.command[0]
        code, stdout, stderr = _run_capped(
            self.command, self._environment(client, scope), self.timeout
        )
        if code != 0:
            said = stderr.decode("utf-8", "replace").strip()[:300]
            raise GrantError(f"grant command exited {code}: {said}")

        try:
            text = stdout.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise GrantError(
                f"grant command {name!r} printed bytes that are not UTF-8 text "
                f"(at byte {exc.start}); it must print one JSON token response"
            ) from None
        body = _json_value(text, f"grant command {name!r} printed")
        if not isinstance(body, dict) or not body.get("refresh_token"):
            raise GrantError("grant command printed no refresh_token")
        return body


# A token response is a few kilobytes: more than this is a mistake, not a grant.
MAX_GRANT_BYTES = 1024 * 1024


def _run_capped(
    command: list[str], env: dict[str, str], timeout: float
) -> tuple[int, bytes, bytes]:
    """Run a grant command: exit code, stdout and the start of stderr.

    Unlike subprocess.run, this reads at most MAX_GRANT_BYTES of stdout, so a
    command that prints without end cannot exhaust the run's memory; the whole
    run, output included, is bounded by timeout.
    """
    name = command[0]
    try:
        finished = run_capped(command, env, timeout, MAX_GRANT_BYTES)
    except OSError as exc:
        raise GrantError(f"grant command {name!r} failed: {exc}") from None

    if finished.overflowed:
        raise GrantError(
            f"grant command {name!r} printed more than {MAX_GRANT_BYTES} bytes; "
            "it must print one JSON token response"
        )
    if finished.code is None:
        raise GrantError(f"grant command {name!r} did not finish within {timeout:g} s")
    return finished.code, finished.stdout, finished.stderr


def _json_value(text: str, what: str) -> Any:
    """Parsed JSON, or GrantError saying what was wrong with it."""
    try:
        return json.loads(text)
    except RecursionError:
        raise GrantError(f"{what} JSON nested too deeply to read") from None
    except ValueError:
        raise GrantError(f"{what} no JSON object") from None


class FileGrants:
    """Token responses from a file (a JSON list, or JSON Lines); each used once."""

    name = "file"

    def __init__(self, path: str) -> None:
        self.path = path
        text = _read_grant_file(path)
        try:
            loaded = json.loads(text)
            grants = loaded if isinstance(loaded, list) else [loaded]
        except RecursionError:
            raise GrantError(
                f"grant file {path!r} holds JSON nested too deeply to read"
            ) from None
        except ValueError:
            grants = _json_lines(text, path)
        self._grants = [
            g for g in grants if isinstance(g, dict) and g.get("refresh_token")
        ]
        # An empty supply is a mistake in the file, not a run of bad luck: say so
        # up front instead of skipping every scenario as "no fresh family left".
        if not self._grants:
            raise GrantError(
                f"grant file {path!r} holds no token response with a refresh_token"
            )
        self._used = 0
        self._lock = threading.Lock()

    def mint(self, http, client, scope):
        with self._lock:
            if self._used >= len(self._grants):
                raise GrantError(
                    f"the grant file {self.path!r} has no fresh family left "
                    f"({self._used} used); this scenario needs another",
                    exhausted=True,
                )
            self._used += 1
            return dict(self._grants[self._used - 1])


def _read_grant_file(path: str) -> str:
    """A grant file's text: a regular file of at most MAX_GRANT_BYTES of UTF-8."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer that never comes.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise GrantError(
            f"cannot read grant file {path!r}: {exc.strerror or exc}"
        ) from None

    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise GrantError(
                f"grant file {path!r} is not a regular file; give a JSON file of "
                "token responses"
            )
        data = file.read(MAX_GRANT_BYTES + 1)

    if len(data) > MAX_GRANT_BYTES:
        raise GrantError(
            f"grant file {path!r} is larger than {MAX_GRANT_BYTES} bytes; a few "
            "hundred token responses fit well within that"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise GrantError(
            f"grant file {path!r} is not UTF-8 text (at byte {exc.start})"
        ) from None


def _json_lines(text: str, path: str) -> list[Any]:
    """A grant file read as JSON Lines, or GrantError naming the bad line."""
    grants = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            grants.append(json.loads(line))
        except RecursionError:
            raise GrantError(
                f"grant file {path!r}: line {number} holds JSON nested too deeply "
                "to read"
            ) from None
        except ValueError:
            raise GrantError(
                f"grant file {path!r} is neither a JSON list nor JSON Lines "
                f"(line {number} is not JSON)"
            ) from None
    return grants


def make_grant_source(
    spec: str | None,
    target: ServerTarget,
    username: str | None,
    password: str | None,
    redirect_uri: str | None,
) -> GrantSource:
    ends = target.endpoints
    if spec is None:
        if ends.admin:
            return AdminGrants(ends.admin)
        raise GrantError(
            "No grant source: the target has no rotcert admin API. Give "
            "--rotcert-grant-source password | authcode | command:CMD | file:PATH."
        )
    kind, _, arg = spec.partition(":")
    if kind == "admin":
        if not ends.admin:
            raise GrantError("grant source admin needs --rotcert-admin-endpoint")
        return AdminGrants(ends.admin)
    if kind == "password":
        if not username or not password:
            raise GrantError(
                "grant source password needs --rotcert-username and ROTCERT_PASSWORD"
            )
        return PasswordGrants(ends.token, username, password)
    if kind == "authcode":
        if not ends.authorization:
            raise GrantError("grant source authcode needs an authorization endpoint")
        return AuthCodeGrants(
            ends.authorization, ends.token, redirect_uri or "http://127.0.0.1:8020/cb"
        )
    if kind == "command" and arg:
        return CommandGrants(arg, ends)
    if kind == "file" and arg:
        return FileGrants(arg)
    raise GrantError(
        f"unknown grant source {spec!r}; use admin | password | authcode | "
        "command:CMD | file:PATH"
    )
