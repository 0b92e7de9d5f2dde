"""What the reference adapters share: the token file, locks and fan-out.

The glue is deliberately the same for every library, so a difference in the
compatibility table is the library's, not the glue's: tokens live in one JSON file
in the state directory, written atomically; an OAuth error answer to a refresh
(HTTP 4xx) means the user must log in again, and the stored token is forgotten
only if it is still the one that was refused.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .protocol import ActionFailed, ReauthRequired

__all__ = [
    "TERMINAL_ERRORS",
    "TokenFile",
    "fan_out",
    "insecure_loopback",
    "summarize",
]

# RFC 6749 §5.2 codes that mean "this refresh will never work": the user must log
# in again. Databricks answers a dead refresh token with invalid_request.
TERMINAL_ERRORS = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
    }
)


class TokenFile:
    """The client's stored tokens: one JSON object in the state directory."""

    def __init__(self, state_dir: Path, name: str = "token.json") -> None:
        self.path = Path(state_dir) / name
        self._lock_path = Path(state_dir) / (name + ".lock")

    def load(self) -> dict[str, Any] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        value = json.loads(text)
        return value if isinstance(value, dict) else None

    def save(self, token: dict[str, Any]) -> None:
        """Write the whole file or nothing, so a crash never leaves half a token."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(token, stream, default=str)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def clear_if(self, refresh_token: str | None) -> bool:
        """Forget the stored token if it still holds this refresh token.

        A refresh that failed must never delete a newer token another request
        or process stored meanwhile (bug class C4, opencode #34074).
        """
        stored = self.load()
        if stored is None or stored.get("refresh_token") != refresh_token:
            return False
        self.path.unlink(missing_ok=True)
        return True

    @contextmanager
    def locked(self) -> Iterator[None]:
        """An exclusive lock across processes (flock on a lock file).

        flock locks belong to the open file, so two instances in one process
        exclude each other too.
        """
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def insecure_loopback() -> None:
    """oauthlib refuses http:// endpoints; the mock serves plain HTTP on loopback.

    Also accept a granted scope narrower than the requested one, which oauthlib
    otherwise raises as a Warning (its documented switch).
    """
    os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")
    os.environ.setdefault("OAUTHLIB_RELAX_TOKEN_SCOPE", "1")


def fan_out(count: int, one: Callable[[], int]) -> list[int | BaseException]:
    """Run one request ``count`` times at once; each gives a status or an error."""
    start = threading.Barrier(count) if count > 1 else None

    def attempt() -> int | BaseException:
        if start is not None:
            start.wait()
        try:
            return one()
        except Exception as exc:  # each request's failure is evidence
            return exc

    if count == 1:
        return [attempt()]
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(lambda _: attempt(), range(count)))


def summarize(results: list[int | BaseException]) -> dict[str, Any]:
    """The call's output; raises for exit 3 (any request needs a login) or 1."""
    shown = [r if isinstance(r, int) else f"{type(r).__name__}: {r}" for r in results]
    output: dict[str, Any] = {"responses": shown}
    for result in results:
        if isinstance(result, ReauthRequired):
            raise ReauthRequired(str(result), output)
    if all(r == 200 for r in results):
        return output
    first = next(r for r in results if r != 200)
    if isinstance(first, int):
        raise ActionFailed(f"the resource answered {first}", output)
    raise ActionFailed(f"{type(first).__name__}: {first}", output)
