"""``rotcert client`` and ``rotcert audit``, wired into the ``rotcert`` command.

    rotcert client --adapter NAME|CMD [--policy FILE | --preset NAME] [--out DIR]
    rotcert audit events.jsonl [--out DIR]

Both exit 0 when every judged profile is certified, 1 when not, and 2 on a
usage error, like ``rotcert server``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["add_commands", "run_audit", "run_client"]

EXIT_CERTIFIED, EXIT_NOT_CERTIFIED, EXIT_USAGE = 0, 1, 2


def add_commands(
    sub: argparse._SubParsersAction,
    report_arguments: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add ``client`` and ``audit`` to the ``rotcert`` sub-commands."""
    from .adapters import names

    client = sub.add_parser(
        "client",
        help="certify a client through an adapter",
        description="Run the client scenario catalogue against the built-in mock "
        "server and print a verdict per client profile. The adapter is a "
        "registered name (" + ", ".join(names()[:5]) + ", the flawed-* "
        "clients), py:module:Class for a Python adapter, or a command run once per "
        "action (see docs/adapter-protocol.md).",
    )
    client.add_argument(
        "--adapter", required=True, metavar="NAME|CMD", help="the client to test"
    )
    source = client.add_mutually_exclusive_group()
    source.add_argument(
        "--policy", metavar="FILE", help="the server policy the scenarios start from"
    )
    source.add_argument("--preset", metavar="NAME", help="a vendor preset, e.g. okta")
    client.add_argument(
        "--client-auth",
        choices=("basic", "post"),
        help="the client's registered authentication (default basic)",
    )
    client.add_argument("--profile", help="client profiles to certify, comma-separated")
    client.add_argument(
        "--time",
        choices=("freeze", "wait"),
        help="freeze: move the clock of an in-process adapter (default for one); "
        "wait: real time with 1 s access tokens (the only choice for a command)",
    )
    client.add_argument(
        "--action-timeout",
        type=float,
        metavar="SECONDS",
        help="how long one action may take before it counts as hung (default 30)",
    )
    report_arguments(client)
    client.set_defaults(run=run_client)

    audit = sub.add_parser(
        "audit",
        help="judge a recording of a client made with serve --record",
        description="Apply every client rule a recording can judge (reuse of a "
        "consumed token, parallel refreshes with one token, refresh storms after "
        "invalid_grant, scope broadening, refresh token sent to the resource, "
        "client authentication) and write the same verdict and reports.",
    )
    audit.add_argument("events", metavar="EVENTS_JSONL", help="the recording")
    audit.add_argument(
        "--out",
        default="rotcert-audit",
        help="folder for report.html, junit.xml and summary.json",
    )
    audit.set_defaults(run=run_audit)


def run_client(args: argparse.Namespace) -> int:
    from .adapters import AdapterError, resolve
    from .cli import pytest_arguments, run_pytest
    from .client_scenarios import CLIENT_SCENARIOS_DIR

    try:
        adapter = resolve(args.adapter)
    except AdapterError as exc:
        print(f"rotcert client: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.time == "freeze" and not adapter.in_process:
        print(
            "rotcert client: error: --time freeze needs an in-process adapter; a "
            "command's clock cannot be moved (use --time wait).",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.action_timeout is not None and args.action_timeout <= 0:
        print(
            "rotcert client: error: --action-timeout must be above 0.", file=sys.stderr
        )
        return EXIT_USAGE

    out = Path(args.out)
    argv = pytest_arguments(out, args)
    for name in ("policy", "preset", "client_auth", "profile", "time"):
        value = getattr(args, name)
        if value is not None:
            argv.append(f"--rotcert-{name.replace('_', '-')}={value}")
    argv.append(str(CLIENT_SCENARIOS_DIR))

    # The scenarios' fixtures read the adapter from the environment, which also
    # reaches pytest-xdist workers.
    os.environ["ROTCERT_ADAPTER"] = args.adapter
    if args.action_timeout is not None:
        os.environ["ROTCERT_ACTION_TIMEOUT"] = str(args.action_timeout)
    print(f"rotcert client: testing {adapter.name!r}", flush=True)
    return run_pytest(argv, out)


def run_audit(args: argparse.Namespace) -> int:
    from .audit import (
        AuditError,
        audit_events,
        load_events,
        verdicts_for,
        write_reports,
    )

    try:
        events = load_events(args.events)
    except AuditError as exc:
        print(f"rotcert audit: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    records = audit_events(events)
    verdicts = verdicts_for(records)
    out = Path(args.out)
    target = {
        "recording": str(args.events),
        "events": len(events),
        "clients": sorted({str(e["client_id"]) for e in events if e.get("client_id")}),
    }
    write_reports(out, records, verdicts, target)

    for record in records:
        line = f"{record.scenario_id:<11} {record.outcome.upper():<8} {record.title}"
        print(line)
        if record.outcome == "failed":
            for step in record.steps:
                print(f"    {step}")
    print()
    for verdict in verdicts:
        print(f"rotcert {verdict['profile']}: {verdict['status']}")
    print(f"report:  {out / 'report.html'}")
    print(f"junit:   {out / 'junit.xml'}")
    print(f"summary: {out / 'summary.json'}")
    certified = all(v["certified"] for v in verdicts)
    return EXIT_CERTIFIED if certified else EXIT_NOT_CERTIFIED
