"""Refresh-grant throughput and latency of the mock server over loopback HTTP.

Starts ``python -m mock_server.serve`` (waitress) in a child process for each store,
then at each concurrency level runs N client threads for a fixed time. Each thread
owns one family and always presents its newest refresh token, so every refresh must
succeed. Afterwards the server's event log and introspection prove the run clean:
no token may yield two successors (double spend) and no thread may lose its chain
(lost token). See bench/README.md.
"""

from __future__ import annotations

import argparse
import queue
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import requests

START_SECONDS = 30


@dataclass
class Worker:
    """What one client thread saw."""

    refreshed: int = 0
    errors: int = 0
    lost: int = 0
    latencies: list[float] = field(default_factory=list)
    final_token: str | None = None


@dataclass
class Level:
    store: str
    concurrency: int
    seconds: float
    refreshed: int
    errors: int
    double_spends: int
    lost_tokens: int
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.refreshed / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


class Mock:
    """A ``rotcert serve`` child process and what its banner said."""

    def __init__(
        self, store: str, threads: int | None, log: Path, workers: int = 1
    ) -> None:
        self._log = log.open("w")
        command = [sys.executable, "-m", "mock_server.serve", "--port", "0"]
        command += ["--store", store, "--workers", str(workers)]
        if threads is not None:
            command += ["--threads", str(threads)]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        banner = self._banner()
        self.base_url = _search(r"issuer:\s+(\S+)", banner)
        self.auth = (
            "rotcert-client",
            _search(r"client_id=rotcert-client\s+client_secret=(\S+)", banner),
        )

    def _banner(self) -> str:
        lines: queue.Queue[str] = queue.Queue()

        def pump() -> None:
            assert self.process.stdout is not None
            for line in iter(self.process.stdout.readline, ""):
                lines.put(line)
            lines.put("")

        threading.Thread(target=pump, daemon=True).start()
        seen, deadline = [], time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            seen.append(line)
            if not line or line.startswith("Press Ctrl-C"):
                break
        if not seen or not seen[-1].startswith("Press Ctrl-C"):
            self.stop()
            # The cause is on the child's stderr (a missing module, a busy port).
            errors = Path(self._log.name).read_text()[-2000:]
            raise SystemExit(
                "the mock server did not start:\n" + "".join(seen) + errors
            )
        return "".join(seen)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


def _search(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    if match is None:
        raise SystemExit(f"unexpected banner, no match for {pattern!r}:\n{text}")
    return match.group(1)


def _mint(session: requests.Session, base_url: str) -> str:
    response = session.post(base_url + "/admin/grants", json={}, timeout=30)
    response.raise_for_status()
    return response.json()["refresh_token"]


def _run_worker(
    mock: Mock, barrier: threading.Barrier, deadline: list[float], out: Worker
) -> None:
    with requests.Session() as session:
        token = _mint(session, mock.base_url)
        barrier.wait()
        while time.perf_counter() < deadline[0]:
            form = {"grant_type": "refresh_token", "refresh_token": token}
            started = time.perf_counter()
            response = session.post(
                mock.base_url + "/token", data=form, auth=mock.auth, timeout=60
            )
            out.latencies.append(time.perf_counter() - started)
            if response.status_code == 200:
                out.refreshed += 1
                token = response.json()["refresh_token"]
                continue
            # The newest token of a family nobody else touches was refused: the
            # server lost it. Start a new family so the run goes on.
            out.errors += 1
            if response.status_code == 400:
                out.lost += 1
            token = _mint(session, mock.base_url)
        out.final_token = token


def _double_spends(mock: Mock) -> int:
    """Tokens the server answered 200 to more than once, from its own events."""
    events = requests.get(mock.base_url + "/admin/events", timeout=60).json()["events"]
    wins = Counter(
        e["presented_fp"]
        for e in events
        if e.get("endpoint") == "token" and e.get("status") == 200
    )
    return sum(1 for count in wins.values() if count > 1)


def _still_active(mock: Mock, token: str) -> bool:
    response = requests.post(
        mock.base_url + "/introspect", data={"token": token}, auth=mock.auth, timeout=30
    )
    return response.status_code == 200 and response.json().get("active") is True


def run_level(mock: Mock, store: str, concurrency: int, seconds: float) -> Level:
    requests.post(mock.base_url + "/admin/reset", timeout=30).raise_for_status()
    deadline = [0.0]
    started = [0.0]

    def go() -> None:
        started[0] = time.perf_counter()
        deadline[0] = started[0] + seconds

    barrier = threading.Barrier(concurrency, action=go)
    workers = [Worker() for _ in range(concurrency)]
    threads = [
        threading.Thread(target=_run_worker, args=(mock, barrier, deadline, w))
        for w in workers
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started[0]

    lost = sum(w.lost for w in workers)
    lost += sum(
        1 for w in workers if w.final_token and not _still_active(mock, w.final_token)
    )
    return Level(
        store=store,
        concurrency=concurrency,
        seconds=elapsed,
        refreshed=sum(w.refreshed for w in workers),
        errors=sum(w.errors for w in workers),
        double_spends=_double_spends(mock),
        lost_tokens=lost,
        latencies=[x for w in workers for x in w.latencies],
    )


def print_table(levels: list[Level]) -> None:
    header = (
        f"{'store':<7} {'conc':>4} {'refreshes':>9} {'grants/s':>9} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'double':>6} {'lost':>5}"
    )
    print(header)
    print("-" * len(header))
    for level in levels:
        print(
            f"{level.store:<7} {level.concurrency:>4} {level.refreshed:>9} "
            f"{level.rate:>9.0f} {level.percentile(0.50):>7.2f} "
            f"{level.percentile(0.99):>7.2f} {level.errors:>6} "
            f"{level.double_spends:>6} {level.lost_tokens:>5}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per level")
    parser.add_argument(
        "--levels", default="1,4,16", help="client threads per level (default 1,4,16)"
    )
    parser.add_argument(
        "--stores", default="memory,sqlite", help="default: memory,sqlite"
    )
    parser.add_argument(
        "--server-threads", type=int, default=16, help="waitress threads (16)"
    )
    args = parser.parse_args(argv)
    levels = [int(n) for n in args.levels.split(",")]

    results: list[Level] = []
    with tempfile.TemporaryDirectory(prefix="rotcert-bench-") as scratch:
        for store in args.stores.split(","):
            spec = (
                f"sqlite:{Path(scratch) / 'bench.db'}" if store == "sqlite" else store
            )
            mock = Mock(spec, args.server_threads, Path(scratch) / f"{store}.log")
            try:
                for concurrency in levels:
                    level = run_level(mock, store, concurrency, args.seconds)
                    results.append(level)
                    print(
                        f"  {store} x{concurrency}: {level.rate:.0f} grants/s",
                        file=sys.stderr,
                    )
            finally:
                mock.stop()

    print_table(results)
    median = statistics.median(r.rate for r in results) if results else 0
    print(f"\nmedian throughput over all levels: {median:.0f} grants/s")
    broken = [r for r in results if r.double_spends or r.lost_tokens]
    if broken:
        print("FAIL: double spends or lost tokens (both must be 0)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
