"""Run rotcert's mock authorization server over HTTP (waitress).

Prints the issuer URL, the three clients' credentials, the admin API and the
Databricks host-metadata URL, then serves until Ctrl-C or SIGTERM. Tests and the
conformance suite use start_in_thread() to serve a MockServer from a thread.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sqlite3
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from waitress import wasyncore
from waitress.server import create_server

from .app import create_app
from .policy import (
    DATABRICKS_EXAMPLE,
    AppIntegration,
    PolicyError,
    load_integration,
    load_policy_file,
    load_preset,
    preset_names,
)
from .server import MockServer
from .sqlite_store import SQLiteStore
from .store import MemoryStore, Store

__all__ = ["add_arguments", "run", "start_in_thread", "ServeError"]

# How long the serving loop waits for network activity before it looks at its stop
# flag: the upper bound on how long a stop takes.
POLL_SECONDS = 0.2
MAX_THREADS = 256
MAX_WORKERS = 64
DEFAULT_THREADS = 8
# Per worker with --workers. Measured (bench/bench_peer.py): one thread per worker
# gave the best rate and the lowest p99; more only queue on the GIL and the lock.
WORKER_THREADS = 1
# A wildcard bind is shown as the loopback address of its family.
WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "::1"}


class ServeError(Exception):
    """A start-up problem the user can fix; the message is one sentence."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``rotcert serve``."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--policy",
        metavar="FILE",
        help="a policy or app-integration JSON file (default: the Databricks "
        "documentation example)",
    )
    source.add_argument(
        "--preset",
        metavar="NAME",
        help="a vendor preset: " + ", ".join(preset_names()),
    )
    parser.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
    parser.add_argument(
        "--port", type=int, default=8080, help="default: 8080; 0 picks a free port"
    )
    parser.add_argument(
        "--store",
        default="memory",
        metavar="memory|sqlite:PATH",
        help="where grants and tokens live (default: memory)",
    )
    parser.add_argument(
        "--record",
        metavar="EVENTS_JSONL",
        help="append every recorded event to this JSON Lines file",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="request threads per process (default: 8, or 1 per worker with --workers)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes sharing one SQLite store, served by granian; a "
        "memory store becomes a temporary SQLite file (default: 1)",
    )


def _integration(args: argparse.Namespace) -> AppIntegration:
    if args.policy:
        return load_policy_file(args.policy)
    if args.preset:
        return load_preset(args.preset)
    return load_integration(DATABRICKS_EXAMPLE)


def _store(spec: str) -> Store:
    if spec == "memory":
        return MemoryStore()
    if spec.startswith("sqlite:") and spec != "sqlite:":
        path = spec.removeprefix("sqlite:")
        if path == ":memory:":
            # Each thread's connection would open its own empty database.
            raise ServeError(
                "--store sqlite::memory: is not shared between threads; use "
                "--store memory, or sqlite:PATH for a file."
            )
        try:
            return SQLiteStore(path)
        except sqlite3.Error as exc:
            raise ServeError(f"cannot open SQLite store {path!r}: {exc}.") from None
        except OSError as exc:
            # The lock files beside the database: a directory in the way, or a
            # directory the user may not write.
            shown = exc.filename or path
            raise ServeError(
                f"cannot open SQLite store {path!r}: {shown}: {exc.strerror}."
            ) from None
    raise ServeError(f"--store is {spec!r}; use memory or sqlite:PATH.")


def _check_record_path(path: str) -> None:
    try:
        with Path(path).open("a"):
            pass
    except OSError as exc:
        raise ServeError(f"cannot write events to {path!r}: {exc.strerror}.") from None


def build_server(args: argparse.Namespace) -> MockServer:
    """The MockServer the options describe; raises ServeError or PolicyError."""
    if args.threads is not None and not 1 <= args.threads <= MAX_THREADS:
        raise ServeError(f"--threads is {args.threads}; use 1 to {MAX_THREADS}.")
    if not 0 <= args.port <= 65535:
        raise ServeError(f"--port is {args.port}; use 0 to 65535.")
    integration = _integration(args)
    if args.record:
        _check_record_path(args.record)
    return MockServer(integration, store=_store(args.store), record=args.record)


def base_url(host: str, port: int) -> str:
    """The URL a bound address is reached at; a wildcard shows as loopback."""
    shown = WILDCARD_HOSTS.get(host, host)
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def bind(host: str, port: int) -> socket.socket:
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        return socket.create_server(address[:2], family=family, backlog=1024)
    except OSError as exc:
        raise ServeError(
            f"cannot listen on {host} port {port}: {exc.strerror or exc}."
        ) from None


class _Listener:
    """A waitress server driven by our own loop, so any thread can stop it."""

    def __init__(self, server: MockServer, host: str, port: int, threads: int):
        self._map: dict[int, Any] = {}
        self._stop = threading.Event()
        # Bind here rather than inside waitress: a failed bind then leaks neither a
        # socket nor waitress' worker threads.
        sock = bind(host, port)
        try:
            self._waitress = create_server(
                create_app(server),
                map=self._map,
                sockets=[sock],
                threads=threads,
                ident="rotcert",
            )
        except BaseException:
            sock.close()
            raise
        bound_host, bound_port = sock.getsockname()[:2]
        self.base_url = base_url(bound_host, bound_port)
        # A wildcard bind is reached under many names; the issuer then follows the
        # Host header instead of naming the loopback address.
        if server.issuer is None and bound_host not in WILDCARD_HOSTS:
            server.issuer = self.base_url

    def serve(self) -> None:
        """Serve until ``stop`` is called, then close every socket."""
        try:
            while not self._stop.is_set():
                wasyncore.loop(timeout=POLL_SECONDS, map=self._map, count=1)
        finally:
            self._waitress.task_dispatcher.shutdown()
            wasyncore.close_all(self._map)

    def stop(self) -> None:
        self._stop.set()


def start_in_thread(
    server: MockServer, host: str = "127.0.0.1", port: int = 0, threads: int = 8
) -> tuple[str, Callable[[], None]]:
    """Serve ``server`` from a daemon thread; return its base URL and a stop function.

    Sets ``server.issuer`` to the base URL when it has none.
    """
    listener = _Listener(server, host, port, threads)
    thread = threading.Thread(target=listener.serve, name="rotcert-serve", daemon=True)
    thread.start()

    def stop() -> None:
        listener.stop()
        thread.join(timeout=10)

    return listener.base_url, stop


def _banner(server: MockServer, base_url: str, args: argparse.Namespace) -> str:
    source = args.policy or (f"preset {args.preset}" if args.preset else None)
    lines = [
        "rotcert mock authorization server",
        f"  issuer:            {base_url}",
        f"  admin API:         {base_url}/admin",
        f"  Databricks host:   {base_url}/.well-known/databricks-config",
        f"  policy:            {source or 'Databricks documentation example'}",
        f"  store:             {args.store}",
    ]
    if args.workers > 1:
        threads = args.threads or WORKER_THREADS
        lines.append(
            f"  workers:           {args.workers} processes (granian), "
            f"{threads} thread(s) each"
        )
    if args.record:
        lines.append(f"  recording events:  {args.record}")
    # The one place rotcert prints secrets: the operator needs them to configure
    # the client under test.
    lines.append("  clients:")
    for role, creds in server.credentials.items():
        secret = creds.client_secret or "(public client: no secret)"
        lines.append(f"    {role:<7} client_id={creds.client_id}")
        lines.append(f"            client_secret={secret}")
    lines.append("Press Ctrl-C to stop.")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C or SIGTERM. Returns the process exit status."""
    if not 1 <= args.workers <= MAX_WORKERS:
        return _usage_error(f"--workers is {args.workers}; use 1 to {MAX_WORKERS}.")
    if args.workers > 1:
        return _serve_workers(args)
    try:
        server = build_server(args)
        threads = args.threads or DEFAULT_THREADS
        listener = _Listener(server, args.host, args.port, threads)
    except (PolicyError, ServeError) as exc:
        return _usage_error(exc)

    def stop(signum: int, frame: Any) -> None:
        listener.stop()

    # Signal handlers can only be set from the main thread; elsewhere the caller
    # stops the process itself.
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {
            sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)
        }
    print(_banner(server, listener.base_url, args), flush=True)
    try:
        listener.serve()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("rotcert serve: stopped.", flush=True)
    return 0


def _usage_error(message: Any) -> int:
    print(f"rotcert serve: error: {message}", file=sys.stderr)
    return 2


def _serve_workers(args: argparse.Namespace) -> int:
    from . import workers

    def banner(server: MockServer, base_url: str) -> None:
        print(_banner(server, base_url, args), flush=True)

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    # Until granian installs its own handlers, SIGTERM would end the process
    # without unwinding, leaving the temporary store behind; as an interrupt it
    # unwinds through workers.serve, which removes it.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)
    try:
        workers.serve(args, banner)
    except (PolicyError, ServeError) as exc:
        return _usage_error(exc)
    except KeyboardInterrupt:
        pass
    print("rotcert serve: stopped.", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rotcert serve", description="Run rotcert's mock authorization server."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    # Run the package's copy of this module, not __main__'s: worker processes
    # import mock_server.serve, and its ServeError must be the one caught here.
    from mock_server.serve import main as package_main

    sys.exit(package_main())
