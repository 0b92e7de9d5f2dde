"""Wall time of the whole embedded server catalogue, and the time it simulates.

    python bench/bench_catalogue.py [--runs 3]

Each run is a fresh ``rotcert server`` (the embedded mock under the Databricks
example policy, time under freezegun). The figures printed: wall time per run
(median, best), pytest's own time for the scenarios, the simulated time the
scenarios cover (summed, and the longest single scenario) and the ratio of
simulated to wall time. A suite that must really wait would need the simulated
time itself: 30 days for the absolute-lifetime scenario alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def human(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.2f} s"


def run_once(out: Path) -> tuple[float, dict]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "conformance.cli", "server", "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"rotcert server exited {done.returncode}:\n{done.stdout[-2000:]}")
    return wall, json.loads((out / "summary.json").read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    walls, summary = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            wall, summary = run_once(Path(tmp) / f"run{run}")
            walls.append(wall)

    scenarios = summary["scenarios"]
    ran = [s for s in scenarios if s["outcome"] != "skipped"]
    simulated = [s.get("simulated_s") or 0.0 for s in ran]
    scenario_time = sum(s.get("duration_s") or 0.0 for s in ran)
    median = statistics.median(walls)
    print(f"scenarios run           {len(ran)} of {len(scenarios)}")
    print(f"wall time per run       median {median:.2f} s, best {min(walls):.2f} s")
    print(f"time inside scenarios   {scenario_time:.2f} s (the rest is start-up)")
    print(
        f"simulated time covered  {human(sum(simulated))} in all, longest "
        f"{human(max(simulated))}"
    )
    print(f"simulated / wall        {sum(simulated) / median:,.0f} x")
    print(
        "verdicts                "
        + ", ".join(f"{v['profile']} {v['status']}" for v in summary["verdicts"])
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
