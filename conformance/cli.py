"""The ``rotcert`` command.

    rotcert serve   run the mock authorization server
    rotcert server  certify an authorization server (default: the embedded mock)
    rotcert client  certify a client through an adapter
    rotcert audit   judge a recording of a client made with ``serve --record``

``server`` and ``client`` exit 0 when every requested profile is certified, 1 when
not, and 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

__all__ = ["main"]

EXIT_CERTIFIED, EXIT_NOT_CERTIFIED, EXIT_USAGE = 0, 1, 2

# rotcert server flags that become --rotcert-<name> plugin options, as is.
SERVER_FLAGS = [
    ("issuer", "issuer URL of the server under test (endpoints by discovery)"),
    ("token-endpoint", "token endpoint (instead of, or overriding, discovery)"),
    ("authorization-endpoint", "authorization endpoint"),
    ("revocation-endpoint", "RFC 7009 revocation endpoint"),
    ("introspection-endpoint", "RFC 7662 introspection endpoint"),
    ("resource-endpoint", "a protected resource that accepts the access tokens"),
    ("admin-endpoint", "the admin API of a rotcert mock in another process"),
    ("client-id", "client id; the secret comes from ROTCERT_CLIENT_SECRET"),
    ("client-auth", "basic | post | none (default basic)"),
    ("second-client-id", "second client; secret from ROTCERT_SECOND_CLIENT_SECRET"),
    ("policy", "the declared policy file (default: Databricks' example)"),
    ("preset", "a declared vendor preset, e.g. okta"),
    ("profile", "profiles to certify, comma-separated (default: by policy)"),
    ("grant-source", "admin | password | authcode | command:CMD | file:PATH"),
    ("username", "user for the password grant; password from ROTCERT_PASSWORD"),
    ("redirect-uri", "redirect URI for the authcode grant source"),
    ("scope", "scope to ask for when minting a family"),
    ("time", "freeze | admin | wait (default: by target)"),
    ("wait-budget", "seconds of real waiting allowed per scenario (default 0)"),
    ("timeout", "seconds per request (default 10)"),
    ("race-threads", "parallel refreshes per race round (2 to 256, default 8)"),
    ("race-rounds", "race rounds (default 20)"),
    ("broken-mode", "embedded target only: switch on a broken mode, to see a fail"),
]


def _server_parser(sub) -> None:
    parser = sub.add_parser(
        "server",
        help="certify an authorization server (default: the embedded mock)",
        description="Run the server scenario catalogue and print the verdict. With "
        "no target, certifies the embedded mock under the declared policy.",
    )
    for name, text in SERVER_FLAGS:
        parser.add_argument(f"--{name}", dest=name.replace("-", "_"), help=text)
    _report_arguments(parser)


def _report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        default="rotcert-report",
        help="folder for report.html, junit.xml and summary.json",
    )
    parser.add_argument(
        "-n", "--workers", help="run scenarios in parallel (pytest-xdist), e.g. auto"
    )
    parser.add_argument(
        "-k", dest="keyword", help="only scenarios matching (pytest -k)"
    )
    parser.add_argument("-v", "--verbose", action="store_true")


STAGE = ".rotcert-run"
REPORTS = ("report.html", "junit.xml", "summary.json")


def pytest_arguments(out: Path, args: argparse.Namespace) -> list[str]:
    """What every rotcert run hands pytest: isolation from the caller's own pytest
    configuration, and the three reports, written first to a staging folder so a
    run that ends in a usage error leaves the last good reports alone."""
    stage = out / STAGE
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    ini = stage / "pytest.ini"
    ini.write_text("[pytest]\n")
    argv = [
        "-c",
        str(ini),
        "--rootdir",
        str(Path(__file__).parent.parent),
        "-p",
        "no:cacheprovider",
        # rotcert's own modules are imported before pytest starts; that is fine.
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
        "--rotcert-enable",
        f"--html={stage / 'report.html'}",
        "--self-contained-html",
        f"--junitxml={stage / 'junit.xml'}",
        f"--rotcert-summary={stage / 'summary.json'}",
        "-o",
        "junit_family=xunit2",
        "-v" if args.verbose else "-q",
    ]
    if not args.verbose:
        # pytest's short summary repeats each failure as a path inside the
        # installed package; the verdict above it already names every scenario.
        argv.append("-rN")
    if args.workers:
        argv += ["-n", args.workers]
    if args.keyword:
        argv += ["-k", args.keyword]
    return argv


def run_pytest(argv: list[str], out: Path) -> int:
    import pytest

    # Messages then name rotcert's flags (--timeout), not the plugin's.
    before = os.environ.get("ROTCERT_CLI")
    os.environ["ROTCERT_CLI"] = "1"
    stage = out / STAGE
    try:
        code = pytest.main(argv, plugins=[_staging_unnamed()])
    finally:
        if before is None:
            os.environ.pop("ROTCERT_CLI", None)
        else:
            os.environ["ROTCERT_CLI"] = before
    if code in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.INTERRUPTED):
        shutil.rmtree(stage, ignore_errors=True)
        return EXIT_USAGE
    if not (stage / "summary.json").exists():
        shutil.rmtree(stage, ignore_errors=True)
        print("rotcert: no summary was written; see above.", file=sys.stderr)
        return EXIT_USAGE
    for name in REPORTS:
        if (stage / name).exists():
            os.replace(stage / name, out / name)
    shutil.rmtree(stage, ignore_errors=True)

    summary = out / "summary.json"
    verdicts = json.loads(summary.read_text())["verdicts"]
    print()
    for verdict in verdicts:
        print(f"rotcert {verdict['profile']}: {verdict['status']}")
    print(f"report:  {out / 'report.html'}")
    print(f"junit:   {out / 'junit.xml'}")
    print(f"summary: {summary}")
    if not verdicts:
        print("rotcert: no profile was judged.", file=sys.stderr)
        return EXIT_NOT_CERTIFIED
    certified = all(v["certified"] for v in verdicts)
    return EXIT_CERTIFIED if certified else EXIT_NOT_CERTIFIED


def _staging_unnamed() -> object:
    """A plugin that drops the lines in which pytest-html and JUnit name the
    reports they wrote: those are in the staging folder, gone when the run ends,
    and run_pytest prints where the reports really are."""
    import pytest

    class StagingUnnamed:
        @pytest.hookimpl(hookwrapper=True)
        def pytest_terminal_summary(self, terminalreporter):
            write_sep = terminalreporter.write_sep

            def unless_staged(sep: str, title: str | None = None, **markup):
                if title is None or STAGE not in title:
                    write_sep(sep, title, **markup)

            terminalreporter.write_sep = unless_staged
            try:
                yield
            finally:
                del terminalreporter.write_sep

    return StagingUnnamed()


def run_server(args: argparse.Namespace) -> int:
    from .plugin import SCENARIOS_DIR

    out = Path(args.out)
    try:
        argv = pytest_arguments(out, args)
    except OSError as exc:
        # An unusable --out folder is a usage error, not a traceback.
        print(f"rotcert: cannot write reports to {out}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for name, _ in SERVER_FLAGS:
        value = getattr(args, name.replace("-", "_"))
        if value is not None:
            argv.append(f"--rotcert-{name}={value}")
    argv.append(str(SCENARIOS_DIR))
    return run_pytest(argv, out)


def build_parser() -> argparse.ArgumentParser:
    from mock_server import serve

    parser = argparse.ArgumentParser(
        prog="rotcert",
        description="Certify single-use refresh tokens (refresh token rotation).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve_parser = sub.add_parser(
        "serve",
        help="run the mock authorization server",
        # The module docstring's first paragraph: the rest is for developers.
        description=(serve.__doc__ or "").split("Tests and the")[0].strip(),
    )
    serve.add_arguments(serve_parser)
    serve_parser.set_defaults(run=serve.run)

    _server_parser(sub)
    sub.choices["server"].set_defaults(run=run_server)

    try:
        from . import client_cli
    except ImportError:
        client_cli = None  # type: ignore[assignment]
    if client_cli is not None:
        client_cli.add_commands(sub, _report_arguments)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        # Name the subcommand's own usage, not the top level's.
        subcommands = parser._subparsers._group_actions[0]  # type: ignore[union-attr]
        subcommands.choices[args.command].error(
            f"unrecognized arguments: {' '.join(unknown)}"
        )
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
