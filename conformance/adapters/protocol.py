"""The adapter protocol: how the suite drives a client under test.

A client is reached through an adapter. The language-neutral form is a command,
run once per action in a new process with the action as its last argument and the
environment variables below; a token response arrives on standard input for
``seed``; the command prints one JSON object and exits 0 (success), 3
(re-authentication needed) or anything else (error). The Python form is a class
with one method per action, run in-process: a new instance per action, so the
state directory is the only thing that survives from one action to the next, as
it would across restarts. docs/adapter-protocol.md is the vendor's guide.
"""

from __future__ import annotations

import json
import os
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from ..commands import Finished, run_capped

__all__ = [
    "ACTIONS",
    "ENV",
    "EXIT_OK",
    "EXIT_REAUTH",
    "ActionFailed",
    "ActionResult",
    "Adapter",
    "AdapterEnv",
    "AdapterError",
    "CommandAdapter",
    "InProcessAdapter",
    "PythonAdapter",
    "ReauthRequired",
    "run_together",
]

ACTIONS = ("seed", "login", "call")
EXIT_OK = 0
EXIT_REAUTH = 3
EXIT_ERROR = 1

# What an adapter process is told, by variable name.
ENV = {
    "action": "ROTCERT_ACTION",
    "issuer": "ROTCERT_ISSUER",
    "token_endpoint": "ROTCERT_TOKEN_ENDPOINT",
    "authorization_endpoint": "ROTCERT_AUTHORIZATION_ENDPOINT",
    "resource": "ROTCERT_RESOURCE",
    "client_id": "ROTCERT_CLIENT_ID",
    "client_secret": "ROTCERT_CLIENT_SECRET",
    "client_auth_method": "ROTCERT_CLIENT_AUTH_METHOD",
    "redirect_uri": "ROTCERT_REDIRECT_URI",
    "scope": "ROTCERT_SCOPE",
    "state_dir": "ROTCERT_STATE_DIR",
    "concurrency": "ROTCERT_CONCURRENCY",
}

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")

# An adapter's output is evidence for the report, not a channel for megabytes.
MAX_OUTPUT_CHARS = 64 * 1024
# One JSON object about one action is small: more than this is a runaway adapter.
MAX_STDOUT_BYTES = 1024 * 1024


class AdapterError(Exception):
    """The adapter cannot be used at all; the message says how to fix that."""


class ReauthRequired(Exception):
    """Raised by a Python adapter: the client needs the user to log in again.

    The in-process runner turns it into exit code 3, like a command adapter's.
    """

    def __init__(self, message: str, output: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.output = output or {}


class ActionFailed(Exception):
    """Raised by a Python adapter: the action failed (exit code 1), e.g. the
    resource kept answering 401 or the token endpoint was unreachable."""

    def __init__(self, message: str, output: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.output = output or {}


@dataclass(frozen=True)
class AdapterEnv:
    """Everything an adapter is told about the server and its own storage."""

    issuer: str
    token_endpoint: str
    authorization_endpoint: str
    resource: str
    client_id: str
    client_secret: str | None
    client_auth_method: str
    redirect_uri: str
    scope: str
    state_dir: Path
    concurrency: int = 1

    @property
    def scopes(self) -> list[str]:
        return self.scope.split()

    def with_concurrency(self, concurrency: int) -> AdapterEnv:
        return replace(self, concurrency=concurrency)

    def environ(self, action: str) -> dict[str, str]:
        """The variables a command adapter gets for one action."""
        values = {
            "action": action,
            "issuer": self.issuer,
            "token_endpoint": self.token_endpoint,
            "authorization_endpoint": self.authorization_endpoint,
            "resource": self.resource,
            "client_id": self.client_id,
            "client_secret": self.client_secret or "",
            "client_auth_method": self.client_auth_method,
            "redirect_uri": self.redirect_uri,
            "scope": self.scope,
            "state_dir": str(self.state_dir),
            "concurrency": str(self.concurrency),
        }
        return {ENV[name]: value for name, value in values.items()}

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> AdapterEnv:
        """Read the variables back, in an adapter written in Python."""
        environ = os.environ if environ is None else environ
        missing = [
            ENV[name]
            for name in ("token_endpoint", "resource", "client_id", "state_dir")
            if not environ.get(ENV[name])
        ]
        if missing:
            raise AdapterError(
                "not run by rotcert: " + ", ".join(missing) + " is not set"
            )

        def get(name: str) -> str:
            return environ.get(ENV[name], "")

        try:
            concurrency = max(1, int(get("concurrency") or "1"))
        except ValueError:
            raise AdapterError(
                f"{ENV['concurrency']} must be a whole number, got "
                f"{get('concurrency')!r}"
            ) from None
        return cls(
            issuer=get("issuer"),
            token_endpoint=get("token_endpoint"),
            authorization_endpoint=get("authorization_endpoint"),
            resource=get("resource"),
            client_id=get("client_id"),
            client_secret=get("client_secret") or None,
            client_auth_method=get("client_auth_method") or "client_secret_basic",
            redirect_uri=get("redirect_uri"),
            scope=get("scope"),
            state_dir=Path(get("state_dir")),
            concurrency=concurrency,
        )


@dataclass
class ActionResult:
    """What one action did, as the suite and the report see it."""

    action: str
    code: int | None
    output: dict[str, Any] | None = None
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    problem: str | None = None
    concurrency: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.code == EXIT_OK and self.problem is None

    @property
    def reauth(self) -> bool:
        return self.code == EXIT_REAUTH and self.problem is None

    @property
    def message(self) -> str | None:
        """The adapter's own words about what happened, if it gave any."""
        output = self.output or {}
        for key in ("message", "reauth", "error"):
            value = output.get(key)
            if isinstance(value, str) and value:
                return value
        return None

    def describe(self) -> str:
        """exit 0 / exit 3 (re-authentication needed) / exit 1 (error: ...)."""
        if self.problem:
            return f"adapter problem: {self.problem}"
        if self.code == EXIT_OK:
            text = "exit 0 (success)"
        elif self.code == EXIT_REAUTH:
            text = "exit 3 (re-authentication needed)"
        else:
            text = f"exit {self.code} (error)"
        said = self.message
        return f"{text}: {said}" if said else text


class Adapter(Protocol):
    """The runner's view of an adapter, whatever its form."""

    name: str
    in_process: bool

    def run(
        self,
        action: str,
        env: AdapterEnv,
        stdin: dict[str, Any] | None = None,
        timeout: float = 30.0,
    ) -> ActionResult: ...


def _clip(text: str) -> str:
    if len(text) <= MAX_OUTPUT_CHARS:
        return text
    return text[:MAX_OUTPUT_CHARS] + f"\n... ({len(text) - MAX_OUTPUT_CHARS} more)"


def _parse_output(stdout: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """The one JSON object a command adapter prints, or why there is none."""
    try:
        text = stdout.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        return None, (
            f"printed bytes that are not UTF-8 text (at byte {exc.start}); "
            "the protocol asks for one JSON object"
        )
    if not text:
        return None, "printed nothing; the protocol asks for one JSON object"

    try:
        value = json.loads(text)
    except RecursionError:
        return None, "printed JSON nested too deeply to read"
    except ValueError:
        first = text.splitlines()[0][:120]
        return None, f"printed something that is not one JSON object: {first!r}"
    if not isinstance(value, dict):
        return None, f"printed JSON {type(value).__name__}, not a JSON object"
    return value, None


class CommandAdapter:
    """A command run once per action: the language-neutral form."""

    in_process = False

    def __init__(self, argv: list[str], name: str | None = None) -> None:
        if not argv:
            raise AdapterError("the adapter command is empty")
        self.argv = list(argv)
        self.name = name or " ".join(argv)

    def run(
        self,
        action: str,
        env: AdapterEnv,
        stdin: dict[str, Any] | None = None,
        timeout: float = 30.0,
    ) -> ActionResult:
        environ = {**os.environ, **env.environ(action)}
        payload = json.dumps(stdin).encode() if stdin is not None else b""
        started = time.perf_counter()
        try:
            # A session of its own, so a timeout can end the adapter's children too.
            finished = run_capped(
                [*self.argv, action],
                environ,
                timeout,
                MAX_STDOUT_BYTES,
                stdin=payload,
                own_session=True,
            )
        except OSError as exc:
            return ActionResult(
                action,
                None,
                problem=f"could not start {self.argv[0]!r}: {exc.strerror or exc}",
                concurrency=env.concurrency,
            )
        seconds = time.perf_counter() - started

        output, problem = None, _stopped(action, timeout, finished)
        if problem is None:
            output, problem = _parse_output(finished.stdout)
        return ActionResult(
            action,
            finished.code,
            output,
            _clip(finished.stdout.decode("utf-8", "replace")),
            _clip(finished.stderr.decode("utf-8", "replace")),
            seconds,
            problem,
            env.concurrency,
        )


def _stopped(action: str, timeout: float, finished: Finished) -> str | None:
    """Why rotcert ended an adapter command, if it did."""
    if finished.overflowed:
        return (
            f"{action} printed more than {MAX_STDOUT_BYTES} bytes; the protocol "
            "asks for one JSON object"
        )
    if finished.timed_out:
        return (
            f"{action} did not finish within {timeout:g} s (a retry loop, or a "
            "client waiting for input?)"
        )
    return None


class PythonAdapter:
    """Base class of the Python form: one method per action.

    The runner makes a new instance for every action; keep nothing outside the
    instance and ``env.state_dir``. Return a JSON-able dict (or None) for exit 0,
    raise :class:`ReauthRequired` for exit 3, anything else for an error.
    """

    name = "python"

    def __init__(self, env: AdapterEnv) -> None:
        self.env = env

    def seed(self, token_response: dict[str, Any]) -> dict[str, Any] | None:
        """Store a token response as if a login had produced it."""
        raise NotImplementedError("seed is not implemented by this adapter")

    def login(self) -> dict[str, Any] | None:
        """Run the authorization-code flow against the authorization endpoint."""
        raise NotImplementedError("login is not supported by this adapter")

    def call(self) -> dict[str, Any] | None:
        """Make env.concurrency requests to the resource at the same time."""
        raise NotImplementedError("call is not implemented by this adapter")

    def perform(self, action: str, stdin: dict[str, Any] | None) -> Any:
        if action == "seed":
            if not isinstance(stdin, dict):
                raise ValueError("seed needs a token response (a JSON object)")
            return self.seed(stdin)
        if action == "login":
            return self.login()
        if action == "call":
            return self.call()
        raise ValueError(f"unknown action {action!r}; known: {', '.join(ACTIONS)}")


def outcome_of(exc: BaseException | None, value: Any) -> tuple[int, dict[str, Any]]:
    """Exit code and output for a Python adapter's return value or exception."""
    if exc is None:
        return EXIT_OK, value if isinstance(value, dict) else {}
    if isinstance(exc, ReauthRequired):
        return EXIT_REAUTH, {**exc.output, "reauth": str(exc)}
    output = exc.output if isinstance(exc, ActionFailed) else {}
    return EXIT_ERROR, {**output, "error": f"{type(exc).__name__}: {exc}"}


class InProcessAdapter:
    """Runs a :class:`PythonAdapter` class in this process, one instance per
    action, in a thread so a hung client is reported instead of hanging the run."""

    in_process = True

    def __init__(
        self, factory: Callable[[AdapterEnv], PythonAdapter], name: str
    ) -> None:
        self.factory = factory
        self.name = name

    def run(
        self,
        action: str,
        env: AdapterEnv,
        stdin: dict[str, Any] | None = None,
        timeout: float = 30.0,
    ) -> ActionResult:
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["value"] = self.factory(env).perform(action, stdin)
            except Exception as exc:  # the client's failure is the evidence
                box["error"] = exc
                box["trace"] = traceback.format_exc()

        started = time.perf_counter()
        worker = threading.Thread(
            target=work, name=f"rotcert-adapter-{action}", daemon=True
        )
        worker.start()
        worker.join(timeout)
        seconds = time.perf_counter() - started
        if worker.is_alive():
            return ActionResult(
                action,
                None,
                seconds=seconds,
                problem=f"{action} did not finish within {timeout:g} s (a retry loop?)",
                concurrency=env.concurrency,
            )
        code, output = outcome_of(box.get("error"), box.get("value"))
        stdout = json.dumps(output, default=str)
        return ActionResult(
            action,
            code,
            output,
            _clip(stdout),
            _clip(box.get("trace", "")),
            seconds,
            None,
            env.concurrency,
        )


def run_together(
    adapter: Adapter,
    action: str,
    envs: list[AdapterEnv],
    timeout: float = 30.0,
) -> list[ActionResult]:
    """Run one action in several processes (or instances) at the same time."""
    with ThreadPoolExecutor(max_workers=len(envs)) as pool:
        futures = [pool.submit(adapter.run, action, env, None, timeout) for env in envs]
        return [future.result() for future in futures]
