"""Running a command rotcert did not write, with its time and output bounded.

Grant commands and client adapters are the user's programs: one may print without
end, never exit, or never read its input. run_capped reads at most a set amount
of each output stream and ends the command at its deadline, so none of that can
hang the run or exhaust its memory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

__all__ = ["STDERR_KEPT_BYTES", "Finished", "run_capped"]

# How much of a command's stderr is kept to quote; the rest is read and dropped.
STDERR_KEPT_BYTES = 64 * 1024


@dataclass(frozen=True)
class Finished:
    """How a command ended, and the start of what it printed.

    code is None when rotcert ended the command: it ran past its timeout
    (timed_out) or printed more stdout than it may (overflowed).
    """

    code: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool = False
    overflowed: bool = False


def run_capped(
    command: list[str],
    env: dict[str, str],
    timeout: float,
    limit: int,
    *,
    stdin: bytes | None = None,
    own_session: bool = False,
) -> Finished:
    """Run command, keeping at most ``limit`` bytes of its stdout.

    The whole run, output included, is bounded by timeout. stdin, when given,
    is written to the command's standard input, which is then closed. With
    own_session the command gets a session of its own, so ending it ends its
    children too. Raises OSError when the command cannot be started.
    """
    proc = subprocess.Popen(
        command,
        env=env,
        stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=own_session,
    )

    box: dict[str, bytes] = {}
    readers = [
        _start(_read_stream, proc.stdout, limit + 1, box, "stdout", False),
        _start(_read_stream, proc.stderr, STDERR_KEPT_BYTES, box, "stderr", True),
    ]
    if stdin is not None:
        # A thread of its own: a command that prints before it reads would
        # otherwise block on a full pipe while rotcert blocks writing to it.
        _start(_write_stream, proc.stdin, stdin)

    deadline = time.monotonic() + timeout
    code = None
    try:
        readers[0].join(timeout)
        overflowed = len(box.get("stdout", b"")) > limit
        if not readers[0].is_alive() and not overflowed:
            code = _wait(proc, deadline)
            readers[1].join(max(deadline - time.monotonic(), 0.1))
    finally:
        if code is None:
            _stop(proc, own_session)
        _close(proc, readers)

    stdout = box.get("stdout", b"")
    return Finished(
        code,
        stdout[:limit],
        box.get("stderr", b""),
        timed_out=code is None and not overflowed,
        overflowed=overflowed,
    )


def _start(target: Callable[..., None], *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def _read_stream(
    stream: IO[bytes], keep: int, box: dict[str, bytes], key: str, drain: bool
) -> None:
    """Read up to keep bytes of a pipe into box[key]; with drain, read the rest
    and drop it, so the command never blocks on a full pipe."""
    try:
        box[key] = stream.read(keep)
        while drain and stream.read(64 * 1024):
            pass
    except (OSError, ValueError):  # the pipe was closed under us
        box.setdefault(key, b"")


def _write_stream(stream: IO[bytes], data: bytes) -> None:
    """Write data to a pipe and close it; a command may exit without reading."""
    try:
        stream.write(data)
    except (OSError, ValueError):
        pass
    finally:
        try:
            stream.close()
        except (OSError, ValueError):
            pass


def _wait(proc: subprocess.Popen, deadline: float) -> int | None:
    """The exit code, or None when the command outlives the deadline."""
    try:
        return proc.wait(max(deadline - time.monotonic(), 0.01))
    except subprocess.TimeoutExpired:
        return None


def _stop(proc: subprocess.Popen, own_session: bool) -> None:
    """End the command (and, in its own session, every process it started)."""
    if own_session:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _close(proc: subprocess.Popen, readers: list[threading.Thread]) -> None:
    """The command's pipes closed once no reader uses them."""
    for reader, stream in zip(readers, (proc.stdout, proc.stderr), strict=True):
        reader.join(1.0)
        if not reader.is_alive() and stream is not None:
            stream.close()
