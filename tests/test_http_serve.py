"""``rotcert serve`` as a process, and ``start_in_thread`` for tests."""

from __future__ import annotations

import json
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from http_helpers import assert_no_secrets, make_server, token_values

from mock_server.serve import ServeError, start_in_thread

START_SECONDS = 20


def launch(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mock_server.serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent.parent,
    )


def read_banner(process: subprocess.Popen[str]) -> str:
    """Stdout up to the 'Press Ctrl-C' line, or fail after START_SECONDS."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in iter(process.stdout.readline, ""):
            lines.put(line)
            if line.startswith("Press Ctrl-C"):
                return
        lines.put("")

    threading.Thread(target=pump, daemon=True).start()
    seen, deadline = [], time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=deadline - time.monotonic())
        except queue.Empty:
            break
        seen.append(line)
        if line.startswith("Press Ctrl-C"):
            return "".join(seen)
        if not line:
            break
    process.kill()
    _, err = process.communicate(timeout=10)
    raise AssertionError("no banner: " + "".join(seen) + err)


def field(banner: str, name: str) -> str:
    match = re.search(rf"^\s*{name}:\s+(\S+)", banner, re.MULTILINE)
    assert match, banner
    return match.group(1)


def stop(process: subprocess.Popen[str], sig: int) -> tuple[int, str, str]:
    process.send_signal(sig)
    out, err = process.communicate(timeout=15)
    return process.returncode, out, err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_prints_endpoints_and_stops_cleanly(tmp_path, sig):
    """rotcert serve: prints URLs and credentials, stops with exit 0."""
    record = tmp_path / "events.jsonl"
    process = launch("--port", "0", "--preset", "databricks", "--record", str(record))
    banner = read_banner(process)
    issuer = field(banner, "issuer")
    secrets = set(re.findall(r"client_secret=(\S{20,})", banner))

    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", issuer)
    assert field(banner, "admin API") == issuer + "/admin"
    assert field(banner, "Databricks host") == issuer + "/.well-known/databricks-config"
    assert "rotcert-client" in banner and "rotcert-public" in banner
    assert f"recording events:  {record}" in banner
    assert len(secrets) == 2
    meta = requests.get(issuer + "/.well-known/oauth-authorization-server", timeout=5)
    assert meta.json()["issuer"] == issuer

    code, out, err = stop(process, sig)

    assert code == 0, err
    assert "Traceback" not in err


def test_serve_record_file_holds_no_token_or_secret(tmp_path):
    """DESIGN events: the --record file names tokens by fingerprint only."""
    record = tmp_path / "events.jsonl"
    process = launch("--port", "0", "--record", str(record), "--threads", "2")
    try:
        banner = read_banner(process)
        issuer = field(banner, "issuer")
        secrets = set(re.findall(r"client_secret=(\S{20,})", banner))
        main_secret = re.search(
            r"client_id=rotcert-client\s+client_secret=(\S+)", banner
        ).group(1)
        auth = ("rotcert-client", main_secret)

        grant = requests.post(issuer + "/admin/grants", json={}, timeout=5).json()
        secrets |= token_values(grant)
        form = {"grant_type": "refresh_token", "refresh_token": grant["refresh_token"]}
        rotated = requests.post(issuer + "/token", data=form, auth=auth, timeout=5)
        secrets |= token_values(rotated.json())
        replay = requests.post(issuer + "/token", data=form, auth=auth, timeout=5)
        assert (rotated.status_code, replay.status_code) == (200, 400)
        requests.post(
            issuer + "/token", data=form, auth=("rotcert-client", "bad" * 8), timeout=5
        )
        secrets.add("bad" * 8)
        requests.post(
            issuer + "/revoke", data={"token": grant["access_token"]}, auth=auth
        )
    finally:
        code, _, err = stop(process, signal.SIGTERM)

    assert code == 0, err
    lines = record.read_text().splitlines()
    assert [json.loads(line)["endpoint"] for line in lines] == [
        "admin_grant",
        "token",
        "token",
        "token",
        "revoke",
    ]
    assert_no_secrets(record.read_text(), secrets)


def one_line_error(process: subprocess.Popen[str]) -> str:
    out, err = process.communicate(timeout=20)
    assert process.returncode == 2, (out, err)
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_port_in_use_is_one_line_exit_2(workers):
    """rotcert serve: a busy port is a one-line error, exit 2, with or without
    worker processes."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        message = one_line_error(launch("--port", str(port), "--workers", workers))

    assert str(port) in message and "in use" in message


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--preset", "nope"], ["unknown preset", "nope", "databricks"]),
        (["--policy", "missing.json"], ["missing.json"]),
        (["--store", "redis:x"], ["--store", "redis:x"]),
        (["--threads", "0"], ["--threads"]),
        (["--threads", "100000"], ["--threads", "256"]),
        (["--workers", "0"], ["--workers", "64"]),
        (["--workers", "2", "--preset", "nope"], ["unknown preset", "nope"]),
        (["--workers", "2", "--port", "-1"], ["--port is -1"]),
        (["--store", "sqlite::memory:"], ["--store", ":memory:", "memory"]),
    ],
)
def test_bad_arguments_are_one_line_exit_2(args, words):
    """rotcert serve: bad presets, files and options are one-line errors, exit 2."""
    message = one_line_error(launch("--port", "0", *args))

    assert all(word in message for word in words), message


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"access_token_ttl_in_minutes": 1}', ["access_token_ttl_in_minutes", "1"]),
        ("{not json", ["not valid JSON", "line 1"]),
        ("[" * 100_000, ["nested too deeply"]),
    ],
)
def test_bad_policy_file_is_one_line_exit_2(tmp_path, text, words):
    """DESIGN policy: a bad policy file is one line naming the problem, exit 2."""
    policy = tmp_path / "policy.json"
    policy.write_text(text)

    message = one_line_error(launch("--port", "0", "--policy", str(policy)))

    assert all(word in message for word in words), message


def test_serve_with_sqlite_store(tmp_path):
    """rotcert serve: --store sqlite:PATH keeps clients across a restart."""
    store = f"sqlite:{tmp_path / 'mock.db'}"
    first = launch("--port", "0", "--store", store)
    banner = read_banner(first)
    stop(first, signal.SIGTERM)

    second = launch("--port", "0", "--store", store)
    again = read_banner(second)
    stop(second, signal.SIGTERM)

    secret = re.compile(r"client_id=rotcert-client\s+client_secret=(\S+)")
    assert secret.search(banner).group(1) == secret.search(again).group(1)


def race(parallel: int, url: str, token: str, auth: tuple[str, str]) -> list[int]:
    """The statuses of ``parallel`` refreshes of one token released together."""
    start = threading.Barrier(parallel)
    statuses: list[int] = []

    def spend() -> None:
        start.wait(timeout=10)
        statuses.append(
            requests.post(
                url,
                data={"grant_type": "refresh_token", "refresh_token": token},
                auth=auth,
                timeout=10,
            ).status_code
        )

    threads = [threading.Thread(target=spend) for _ in range(parallel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def test_workers_share_one_store_and_rotate_atomically():
    """rotcert serve --workers (issue 5): two processes, one state, one winner.

    DESIGN atomic rotation across processes: 8 parallel refreshes of one token,
    whichever worker each lands on, yield exactly one successor, every round; the
    event log holds every worker's events; SIGTERM stops all and removes the
    temporary store the memory store became.
    """
    process = launch("--port", "0", "--workers", "2")
    banner = read_banner(process)
    issuer = field(banner, "issuer")
    store = Path(field(banner, "store").removeprefix("sqlite:"))
    secret = re.search(r"client_id=rotcert-client\s+client_secret=(\S+)", banner)
    auth = ("rotcert-client", secret.group(1))
    assert "2 processes" in banner

    winners = []
    for _ in range(5):
        grant = requests.post(issuer + "/admin/grants", json={}, timeout=10).json()
        results = race(8, issuer + "/token", grant["refresh_token"], auth)
        winners.append(results.count(200))
    events = requests.get(issuer + "/admin/events", timeout=10).json()["events"]

    assert winners == [1] * 5
    assert sum(e["endpoint"] == "token" for e in events) == 40
    code, _, err = stop(process, signal.SIGTERM)
    assert code == 0, err
    assert "Traceback" not in err
    assert not store.parent.exists()


def test_unusable_lock_file_is_one_line_exit_2(tmp_path):
    """rotcert serve: a directory where the store's lock file goes is named at
    start, not a 500 at the first write."""
    (tmp_path / "s.db-events.lock").mkdir()

    message = one_line_error(
        launch("--port", "0", "--store", f"sqlite:{tmp_path}/s.db")
    )

    assert "s.db-events.lock" in message


def test_workers_refuse_an_oversized_chunked_body_and_stop_promptly():
    """rotcert serve --workers: a chunked body over 64 KiB is 413 as with one
    process (granian passes it on chunked; werkzeug cut it silently), and a stop
    does not wait for a request an injected one-minute delay holds."""
    process = launch("--port", "0", "--workers", "2")
    banner = read_banner(process)
    issuer = field(banner, "issuer")
    secret = re.search(r"client_id=rotcert-client\s+client_secret=(\S+)", banner)
    auth = ("rotcert-client", secret.group(1))

    def chunks():
        yield b"grant_type=refresh_token&refresh_token=x"
        for _ in range(100):
            yield b"&pad=" + b"a" * 2000

    oversized = requests.post(
        issuer + "/token",
        data=chunks(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    requests.post(
        issuer + "/admin/faults", json={"kind": "delay", "delay_ms": 60000}, timeout=5
    )
    held_for = []

    def held() -> None:
        began = time.monotonic()
        try:
            requests.post(
                issuer + "/token",
                data={"grant_type": "refresh_token", "refresh_token": "x"},
                auth=auth,
                timeout=90,
            )
        except requests.RequestException:
            pass
        held_for.append(time.monotonic() - began)

    holder = threading.Thread(target=held, daemon=True)
    holder.start()
    time.sleep(1)
    started = time.monotonic()
    code, _, err = stop(process, signal.SIGTERM)

    assert oversized.status_code == 413
    assert oversized.json()["error"] == "invalid_request"
    assert code == 0, err
    assert time.monotonic() - started < 15
    holder.join(timeout=30)
    assert held_for and 1 < held_for[0] < 30  # the delay was really in flight


def test_start_in_thread_serves_and_stops():
    """start_in_thread: serves on a free port, sets the issuer, stops for good."""
    mock = make_server()
    base_url, stop_serving = start_in_thread(mock)

    meta = requests.get(base_url + "/.well-known/openid-configuration", timeout=5)
    assert meta.json()["issuer"] == base_url == mock.issuer
    stop_serving()

    with pytest.raises(requests.ConnectionError):
        requests.get(base_url + "/admin", timeout=2)


def test_start_in_thread_reports_busy_port():
    """start_in_thread: a busy port raises ServeError naming it."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        with pytest.raises(ServeError, match=str(port)):
            start_in_thread(make_server(), port=port)
