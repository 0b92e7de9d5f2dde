"""Refresh grants per second of the rotcert mock against node oidc-provider, with wrk.

Starts the mock (``python -m mock_server.serve --workers 2``: granian, a shared
SQLite store) and oidc-provider (fixtures/interop/oidc-provider/server.mjs,
rotation on, memory adapter) on 127.0.0.1, then:

1. ``--repeat`` times, alternating between the servers: mints one family per wrk
   connection (the mock: ``POST /admin/grants``; oidc-provider: the headless login
   of fixtures/interop/oidc-provider/grant.py), runs wrk (bench/wrk/rotate.lua) for
   ``--seconds`` with one connection per wrk thread, each rotating its own family
   and always presenting its newest token, and checks that every connection's
   newest token still refreshes (no live token lost);
2. races ``--connections`` parallel refreshes of one fresh token, ``--rounds``
   times, and counts the winners of each round (rotation allows exactly one);
3. counts double spends: for the mock from its own event log (a presented token
   answered 200 twice), for oidc-provider from the race (rounds with two winners).

Prints one row per server (the median pass) and the ratio of their rates. See
bench/README.md.
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import requests
from bench_refresh import Mock

ROOT = Path(__file__).resolve().parents[1]
OIDC_DIR = ROOT / "fixtures" / "interop" / "oidc-provider"
LUA = Path(__file__).resolve().parent / "wrk" / "rotate.lua"
START_SECONDS = 60.0
GOAL_RATIO = 1.5
GOAL_P99_MS = 20.0


@dataclass
class Server:
    """A running authorization server the bench can mint families on."""

    name: str
    base_url: str
    auth: tuple[str, str]
    mint: Callable[[], str]
    stop: Callable[[], None]
    log: Path | None = None
    version: str = ""

    @property
    def token_url(self) -> str:
        return self.base_url + "/token"


@dataclass
class Result:
    """What one server did under wrk and in the race."""

    name: str
    connections: int
    refreshed: int = 0
    window: float = 0.0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    non_200: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    socket_errors: int = 0
    cut: int = 0
    lost: int = 0
    lost_reasons: Counter[str] = field(default_factory=Counter)
    rounds: int = 0
    winners: Counter[int] = field(default_factory=Counter)
    double_spends: int = 0
    double_source: str = ""
    # (grants/s, p50 ms, p99 ms) of each wrk pass; the table shows their medians.
    passes: list[tuple[float, float, float]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        if self.passes:
            return statistics.median(rate for rate, _, _ in self.passes)
        return self.refreshed / self.window if self.window else 0.0

    def add_pass(self) -> None:
        """Close a wrk pass: keep its figures; p50 and p99 become the medians."""
        rate = self.refreshed / self.window if self.window else 0.0
        self.passes.append((rate, self.p50_ms, self.p99_ms))
        self.p50_ms = statistics.median(p50 for _, p50, _ in self.passes)
        self.p99_ms = statistics.median(p99 for _, _, p99 in self.passes)

    @property
    def one_winner(self) -> int:
        return self.winners.get(1, 0)


# ------------------------------------------------------------------ the servers


def start_mock(store: str, threads: int | None, workers: int, scratch: Path) -> Server:
    spec = f"sqlite:{scratch / 'mock.db'}" if store == "sqlite" else store
    mock = Mock(spec, threads, scratch / "mock.log", workers)
    session = requests.Session()

    def mint() -> str:
        reply = session.post(mock.base_url + "/admin/grants", json={}, timeout=30)
        reply.raise_for_status()
        return reply.json()["refresh_token"]

    def stop() -> None:
        session.close()
        mock.stop()

    if workers > 1:
        # The workers share a SQLite store whatever --mock-store says.
        name = f"rotcert mock (sqlite, {workers} workers)"
    else:
        name = f"rotcert mock ({store}, {threads or 8} thr)"
    return Server(name, mock.base_url, mock.auth, mint, stop, scratch / "mock.log")


def external_mock(url: str) -> Server:
    """A mock someone else started (another WSGI server, say): the client secret of
    rotcert-client comes from ROTCERT_CLIENT_SECRET."""
    secret = os.environ.get("ROTCERT_CLIENT_SECRET")
    if not secret:
        raise SystemExit("--mock-url needs ROTCERT_CLIENT_SECRET")
    base_url = url.rstrip("/")
    session = requests.Session()

    def mint() -> str:
        reply = session.post(base_url + "/admin/grants", json={}, timeout=30)
        reply.raise_for_status()
        return reply.json()["refresh_token"]

    return Server(
        "rotcert mock (external)",
        base_url,
        ("rotcert-client", secret),
        mint,
        session.close,
    )


def _grant_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("oidc_grant", OIDC_DIR / "grant.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ready_line(process: subprocess.Popen[str]) -> str | None:
    box: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        box.append(process.stdout.readline())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(START_SECONDS)
    return box[0] if box else None


def start_oidc(scratch: Path) -> Server:
    node = shutil.which("node")
    if node is None:
        raise SystemExit("Node.js is not installed; oidc-provider needs it")
    if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        raise SystemExit(f"oidc-provider is not installed: npm ci --prefix {OIDC_DIR}")
    log = scratch / "oidc-provider.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [node, "server.mjs"],
            cwd=OIDC_DIR,
            env={**os.environ, "PORT": "0", "OIDC_ROTATE": "1"},
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )

    def stop() -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()

    line = _ready_line(process)
    if not line:
        stop()
        raise SystemExit("oidc-provider did not start:\n" + log.read_text()[-2000:])
    ready = json.loads(line)
    client = ready["clients"][0]
    grant = _grant_module()
    auth = (client["client_id"], client["client_secret"])

    def mint() -> str:
        tokens = grant.mint(ready["issuer"], *auth, ready["redirect_uri"])
        return tokens["refresh_token"]

    return Server(
        f"oidc-provider {ready['version']}",
        ready["issuer"],
        auth,
        mint,
        stop,
        log,
        ready["version"],
    )


# ------------------------------------------------------------------------ wrk


def run_wrk(
    server: Server, tokens: list[str], seconds: float, scratch: Path, wrk: str
) -> dict[str, Any]:
    """Run rotate.lua with one connection per thread; return its JSON summary."""
    tokens_file = scratch / "tokens.txt"
    out_file = scratch / "wrk.json"
    tokens_file.write_text("".join(t + "\n" for t in tokens))
    out_file.unlink(missing_ok=True)
    credentials = base64.b64encode(":".join(server.auth).encode()).decode()
    n = len(tokens)
    # The Lua threads stop themselves after `seconds`; wrk's -d is a safety net.
    argv = [
        wrk,
        f"-t{n}",
        f"-c{n}",
        f"-d{int(seconds) + 1}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        "-H",
        f"Authorization: Basic {credentials}",
        server.token_url,
        "--",
        str(tokens_file),
        str(out_file),
        str(seconds),
    ]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    if done.returncode != 0 or not out_file.exists():
        raise SystemExit(f"wrk failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(out_file.read_text())


def _refresh(
    session: requests.Session, server: Server, token: str
) -> requests.Response:
    form = {"grant_type": "refresh_token", "refresh_token": token}
    return session.post(server.token_url, data=form, auth=server.auth, timeout=30)


def _error(reply: requests.Response) -> str:
    try:
        return str(reply.json().get("error", reply.status_code))
    except ValueError:
        return str(reply.status_code)


def read_wrk(result: Result, summary: dict[str, Any]) -> list[dict[str, Any]]:
    threads = summary["threads"]
    result.refreshed = sum(t["ok"] for t in threads)
    firsts = [t["first"] for t in threads if t["first"] is not None]
    lasts = [t["last"] for t in threads if t["last"] is not None]
    result.window = max(lasts) - min(firsts) if firsts and lasts else 0.0
    result.p50_ms = summary["latency_us"]["p50"] / 1000
    result.p99_ms = summary["latency_us"]["p99"] / 1000
    for thread in threads:
        result.statuses.update({k: int(v) for k, v in thread["statuses"].items()})
    errors = summary["errors"]
    result.socket_errors += errors["connect"] + errors["read"] + errors["write"]
    result.non_200 = (
        sum(v for k, v in result.statuses.items() if k != "200") + result.socket_errors
    )
    return threads


def check_tokens(server: Server, result: Result, threads: list[dict[str, Any]]) -> None:
    """Every connection's newest token must still refresh once wrk has stopped."""
    with requests.Session() as session:
        for thread in threads:
            if thread["lost"]:
                result.lost += thread["lost"]
                result.lost_reasons["invalid_grant during the run"] += thread["lost"]
            elif thread["presented"] is not None:
                # wrk's safety net cut a request in flight: the server may have
                # rotated the token without the client seeing the successor.
                result.cut += 1
            else:
                reply = _refresh(session, server, thread["token"])
                if reply.status_code != 200:
                    result.lost += 1
                    result.lost_reasons[f"newest token refused: {_error(reply)}"] += 1


# ----------------------------------------------------------------------- race


def _racer(
    session: requests.Session,
    server: Server,
    token: str,
    barrier: threading.Barrier,
    codes: list[int],
) -> None:
    barrier.wait()
    codes.append(_refresh(session, server, token).status_code)


def race(server: Server, result: Result, rounds: int, parallel: int) -> None:
    """Rounds of `parallel` simultaneous refreshes of one token; count winners."""
    sessions = [requests.Session() for _ in range(parallel)]
    try:
        for session in sessions:  # open the keep-alive connections first
            session.get(server.base_url + "/.well-known/openid-configuration")
        for _ in range(rounds):
            token = server.mint()
            barrier = threading.Barrier(parallel)
            codes: list[int] = []
            racers = [
                threading.Thread(target=_racer, args=(s, server, token, barrier, codes))
                for s in sessions
            ]
            for racer in racers:
                racer.start()
            for racer in racers:
                racer.join()
            result.winners[codes.count(200)] += 1
            result.rounds += 1
    finally:
        for session in sessions:
            session.close()


def mock_double_spends(server: Server) -> int:
    """Presented tokens the mock answered 200 more than once, from its events."""
    reply = requests.get(server.base_url + "/admin/events", timeout=120)
    reply.raise_for_status()
    wins = Counter(
        (e.get("family_id"), e["presented_fp"])
        for e in reply.json()["events"]
        if e.get("endpoint") == "token" and e.get("status") == 200
    )
    return sum(1 for count in wins.values() if count > 1)


def _say(server: Server, text: str) -> None:
    print(f"  {server.name}: {text}", file=sys.stderr)


def load_pass(
    server: Server, result: Result, args: argparse.Namespace, scratch: Path
) -> None:
    """One wrk pass on fresh families, then the check that no live token was lost."""
    started = time.perf_counter()
    tokens = [server.mint() for _ in range(args.connections)]
    _say(
        server,
        f"minted {len(tokens)} families in {time.perf_counter() - started:.1f} s",
    )
    summary = run_wrk(server, tokens, args.seconds, scratch, args.wrk)
    threads = read_wrk(result, summary)
    rate = result.refreshed / result.window if result.window else 0.0
    _say(server, f"{rate:.0f} grants/s, p99 {result.p99_ms:.1f} ms")
    check_tokens(server, result, threads)
    result.add_pass()


def finish(
    server: Server, result: Result, args: argparse.Namespace, is_mock: bool
) -> None:
    """The race rounds and the double-spend count, after every load pass."""
    race(server, result, args.rounds, args.connections)
    _say(server, f"race winners per round: {dict(sorted(result.winners.items()))}")
    if is_mock:
        result.double_spends = mock_double_spends(server)
        result.double_source = "event log"
    else:
        result.double_spends = sum(
            (w - 1) * n for w, n in result.winners.items() if w > 1
        )
        result.double_source = "race"
    if server.log is not None and server.log.exists():
        details = Counter(
            line.strip()
            for line in server.log.read_text().splitlines()
            if line.startswith("grant.error")
        )
        if details:
            # The losers of the race rounds are among these: expected, not errors.
            _say(server, f"server log (race losers included): {dict(details)}")


# ---------------------------------------------------------------------- report


def print_table(results: list[Result]) -> None:
    name_width = max(len(r.name) for r in results)
    header = (
        f"{'server':<{name_width}} {'conns':>5} {'grants/s':>8} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'non-200':>7} {'race 1-winner':>13} {'double':>6} "
        f"{'lost':>4}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        race_cell = f"{r.one_winner}/{r.rounds}"
        print(
            f"{r.name:<{name_width}} {r.connections:>5} {r.rate:>8.0f} "
            f"{r.p50_ms:>7.2f} {r.p99_ms:>7.2f} {r.non_200:>7} {race_cell:>13} "
            f"{r.double_spends:>6} {r.lost:>4}"
        )
    print()
    for r in results:
        winners = ", ".join(f"{w} winner(s): {n}" for w, n in sorted(r.winners.items()))
        rates = ", ".join(f"{rate:.0f}" for rate, _, _ in r.passes)
        notes = [f"grants/s per pass: {rates}", f"race rounds by winners: {winners}"]
        notes.append(f"double spends counted from the {r.double_source}")
        statuses = {k: v for k, v in sorted(r.statuses.items()) if k != "200"}
        if statuses or r.socket_errors:
            notes.append(f"non-200: {statuses}, socket errors {r.socket_errors}")
        if r.lost_reasons:
            notes.append(f"lost: {dict(r.lost_reasons)}")
        if r.cut:
            notes.append(f"{r.cut} connection(s) cut in flight, not checked")
        print(f"{r.name}: " + "; ".join(notes))


def start_server(name: str, args: argparse.Namespace, scratch: Path) -> Server:
    if name == "oidc-provider":
        return start_oidc(scratch)
    if name != "mock":
        raise SystemExit(f"unknown server {name!r}")
    if args.mock_url:
        return external_mock(args.mock_url)
    return start_mock(args.mock_store, args.mock_threads, args.mock_workers, scratch)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="wrk run (10)")
    parser.add_argument(
        "--connections", type=int, default=16, help="wrk connections = threads (16)"
    )
    parser.add_argument("--rounds", type=int, default=20, help="race rounds (20)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="wrk passes per server, alternating between them (3)",
    )
    parser.add_argument(
        "--mock-workers",
        type=int,
        default=2,
        help="the mock's --workers (2: one per core of the reference machine)",
    )
    parser.add_argument(
        "--mock-threads",
        type=int,
        help="the mock's --threads (default: the mock's own default)",
    )
    parser.add_argument("--mock-store", choices=("memory", "sqlite"), default="memory")
    parser.add_argument(
        "--mock-url",
        help="bench this running mock instead of starting one "
        "(secret from ROTCERT_CLIENT_SECRET)",
    )
    parser.add_argument(
        "--servers", default="mock,oidc-provider", help="default: mock,oidc-provider"
    )
    parser.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    args = parser.parse_args(argv)
    if shutil.which(args.wrk) is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    names = args.servers.split(",")

    results: dict[str, Result] = {}
    servers: dict[str, Server] = {}
    with tempfile.TemporaryDirectory(prefix="rotcert-peer-") as tmp:
        scratch = Path(tmp)
        try:
            for name in names:
                servers[name] = start_server(name, args, scratch)
                results[name] = Result(servers[name].name, args.connections)
            # Passes alternate between the servers, so a noisy neighbour on a shared
            # machine slows both alike; the table shows each one's median pass.
            for _ in range(args.repeat):
                for name in names:
                    load_pass(servers[name], results[name], args, scratch)
            for name in names:
                finish(servers[name], results[name], args, name == "mock")
        finally:
            for server in servers.values():
                server.stop()

    print_table(list(results.values()))
    mock, peer = results.get("mock"), results.get("oidc-provider")
    if mock and peer and peer.rate:
        ratio = mock.rate / peer.rate
        print(f"\nratio mock / oidc-provider: {ratio:.2f}x")
        met = ratio >= GOAL_RATIO and mock.p99_ms <= GOAL_P99_MS
        print(
            f"goal (>= {GOAL_RATIO}x, mock p99 <= {GOAL_P99_MS:g} ms): "
            + ("met" if met else "NOT met")
        )
    if mock and (mock.double_spends or mock.lost or mock.one_winner != mock.rounds):
        print(
            "FAIL: the mock double-spent, lost a token or lost a race", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
