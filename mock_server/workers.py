"""Serve the mock from several worker processes that share one SQLite store.

One Python process serves about 800 refresh grants a second on a 2-core machine:
the GIL, not the rotation, is the limit. ``rotcert serve --workers N`` hands the
sockets to granian, whose HTTP layer is Rust, and runs the Flask app in N
processes. Every bit of state (clients, grants, settings, the clock offset, events)
is in the store, so the processes agree; the SQLite store's file lock serializes
their rotations, which keeps one successor per presented token across processes.

The parent seeds the clients and prints the banner; each worker rebuilds the same
MockServer from a JSON description passed in the environment (the worker factory
runs after fork, and a SQLite connection must not cross a fork).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .app import create_app
from .serve import WILDCARD_HOSTS, WORKER_THREADS, base_url, bind, build_server
from .server import MockServer

__all__ = ["serve", "worker_app", "CONFIG_ENV"]

CONFIG_ENV = "ROTCERT_WORKER_CONFIG"
# How long a stop waits for a worker's in-flight request before killing it.
KILL_SECONDS = 3
# How long the banner waits for the workers to listen.
READY_SECONDS = 60.0


def worker_app():
    """The WSGI app of one worker (granian calls this after forking it)."""
    config = json.loads(os.environ[CONFIG_ENV])
    server = build_server(argparse.Namespace(**config))
    server.issuer = config["issuer"]
    return _buffered(create_app(server))


def _buffered(app):
    """Hand granian each body as one bytes object in a list.

    Every mock answer is small and complete before it is sent, but werkzeug returns
    it as an iterator, which granian drains chunk by chunk across the GIL; given a
    list it sends the body in one step.
    """

    def wsgi(environ, start_response):
        answer = app(environ, start_response)
        try:
            return [b"".join(answer)]
        finally:
            if hasattr(answer, "close"):
                answer.close()

    return wsgi


def _claim_port(host: str, port: int) -> int:
    """Check the address is free (a clear error now, not granian's later) and
    resolve --port 0 to a free port. granian then binds it itself; the gap between
    the probe's close and that bind is tiny."""
    with bind(host, port) as probe:
        return probe.getsockname()[1]


def _announce_when_listening(host: str, port: int, announce) -> None:
    # The banner tells tools the server is ready, so it waits until granian's
    # workers accept connections; granian offers no hook for that moment.
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                announce()
                return
        except OSError:
            time.sleep(0.05)


def _scratch_root() -> str | None:
    # The temporary store needs no durability: on tmpfs its writes and WAL
    # checkpoints never wait for a disk.
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def shared_store_spec(spec: str, scratch: Path) -> str:
    """The store workers share: a memory store becomes a temporary SQLite file."""
    if spec == "memory":
        return f"sqlite:{scratch / 'rotcert.db'}"
    return spec


def serve(args: argparse.Namespace, banner: Any) -> None:
    """Serve with granian until Ctrl-C or SIGTERM; ``banner(server, url)`` prints."""
    from granian import Granian
    from granian.constants import Interfaces
    from granian.log import LogLevels

    with tempfile.TemporaryDirectory(
        prefix="rotcert-workers-", dir=_scratch_root()
    ) as scratch:
        args.store = shared_store_spec(args.store, Path(scratch))
        # Options first (build_server checks --port's range), then the address.
        server: MockServer = build_server(args)
        port = _claim_port(args.host, args.port)
        url = base_url(args.host, port)
        # As with one process: a wildcard bind follows the Host header.
        server.issuer = None if args.host in WILDCARD_HOSTS else url
        announce = threading.Thread(
            target=_announce_when_listening,
            args=(
                WILDCARD_HOSTS.get(args.host, args.host),
                port,
                lambda: banner(server, url),
            ),
            daemon=True,
        )
        announce.start()

        config = {
            "policy": args.policy,
            "preset": args.preset,
            "store": args.store,
            "record": args.record,
            "threads": args.threads,
            "port": port,
            "issuer": server.issuer,
        }
        os.environ[CONFIG_ENV] = json.dumps(config)
        Granian(
            "mock_server.workers:worker_app",
            address=args.host,
            port=port,
            interface=Interfaces.WSGI,
            workers=args.workers,
            blocking_threads=args.threads or WORKER_THREADS,
            factory=True,
            log_level=LogLevels.warning,
            # A stop must not wait for a request an injected delay holds for a
            # minute, nor a signal landing while workers start leave them behind.
            workers_kill_timeout=KILL_SECONDS,
            respawn_failed_workers=True,
        ).serve()
