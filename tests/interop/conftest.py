"""Start the real authorization servers the interop tests certify, on 127.0.0.1.

A missing Node, npm, npm package or Python package is a test failure, never a
skip: these tests exist to prove the compatibility table in CI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOT_DIR = ROOT / "fixtures" / "interop" / "dot"
OIDC_DIR = ROOT / "fixtures" / "interop" / "oidc-provider"
START_TIMEOUT = 60.0


@dataclass
class RunningServer:
    """A server process and the JSON line it printed once listening."""

    name: str
    process: subprocess.Popen
    ready: dict[str, Any]
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        if self.process.stdout is not None:
            self.process.stdout.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _ready_line(process: subprocess.Popen) -> str | None:
    """The first stdout line, or None when the server stays silent too long."""
    box: list[str] = []
    reader = threading.Thread(
        target=lambda: box.append(process.stdout.readline() if process.stdout else ""),
        daemon=True,
    )
    reader.start()
    reader.join(START_TIMEOUT)
    return box[0] if box else None


def _start(name: str, argv: list[str], cwd: Path, env: dict[str, str], logs: Path):
    log = logs / f"{name}.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    line = _ready_line(process)
    if line is None:
        process.kill()
        process.wait(timeout=10)
        pytest.fail(
            f"the {name} server printed no ready line within {START_TIMEOUT:g} s; "
            f"its log:\n{log.read_text()[-2000:]}"
        )
    if not line:
        process.wait(timeout=START_TIMEOUT)
        pytest.fail(
            f"the {name} server exited before listening (code {process.returncode}); "
            f"its log:\n{log.read_text()[-2000:]}"
        )
    return RunningServer(name, process, json.loads(line), log, env)


def start_dot(name: str, settings: dict[str, str], logs: Path) -> RunningServer:
    try:
        import oauth2_provider  # noqa: F401
    except ImportError:
        pytest.fail(
            "django-oauth-toolkit is not installed: pip install -e '.[interop]'"
        )
    argv = [sys.executable, str(DOT_DIR / "serve.py"), "--db", str(logs / f"{name}.db")]
    return _start(name, argv, DOT_DIR, settings, logs)


def ensure_oidc_provider() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is not installed; the oidc-provider interop needs it")
    if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is not installed; run: npm ci --prefix " + str(OIDC_DIR))
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--prefix", str(OIDC_DIR)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"npm ci failed for oidc-provider:\n{done.stderr[-2000:]}")
    return node


def start_oidc(name: str, rotate: bool, logs: Path) -> RunningServer:
    node = ensure_oidc_provider()
    env = {"PORT": "0", "OIDC_ROTATE": "1" if rotate else "0"}
    return _start(name, [node, "server.mjs"], OIDC_DIR, env, logs)


@pytest.fixture(scope="session")
def interop_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("interop")


@pytest.fixture(scope="session")
def servers() -> Iterator[list[RunningServer]]:
    """Every running server, stopped at the end of the session."""
    running: list[RunningServer] = []
    yield running
    for server in running:
        server.stop()


def wait_all(processes: list[subprocess.Popen], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
