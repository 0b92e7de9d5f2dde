"""The plugin's options: one group, one prefix, matching ini keys and variables.

Each option ``--rotcert-foo-bar`` can also be given as the ini key
``rotcert_foo_bar`` or the environment variable ``ROTCERT_FOO_BAR``; secrets are
read from the environment only, so they stay out of process lists and CI logs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

__all__ = [
    "OPTIONS",
    "SECRETS",
    "add_options",
    "cli_flags",
    "is_active",
    "option",
    "secret",
]


@dataclass(frozen=True)
class Option:
    name: str
    help: str
    default: str | None = None
    flag: bool = False

    @property
    def dest(self) -> str:
        return "rotcert_" + self.name.replace("-", "_")

    @property
    def env(self) -> str:
        return self.dest.upper()


OPTIONS = [
    Option("target", "embedded (the built-in mock server, default) or url", None),
    Option("issuer", "issuer URL of the server under test; endpoints by discovery"),
    Option("token-endpoint", "token endpoint, overriding discovery"),
    Option("authorization-endpoint", "authorization endpoint, overriding discovery"),
    Option("revocation-endpoint", "RFC 7009 endpoint, overriding discovery"),
    Option("introspection-endpoint", "RFC 7662 endpoint, overriding discovery"),
    Option("resource-endpoint", "a protected resource that takes the access tokens"),
    Option("admin-endpoint", "a rotcert mock's admin API (enables admin grants/time)"),
    Option("client-id", "client id (secret: env ROTCERT_CLIENT_SECRET)"),
    Option("client-auth", "client authentication: basic | post | none", "basic"),
    Option(
        "second-client-id",
        "a second client for cross-client checks "
        "(secret: ROTCERT_SECOND_CLIENT_SECRET)",
    ),
    Option("policy", "the declared policy file (same JSON as the mock's)"),
    Option("preset", "a declared vendor preset instead of --rotcert-policy"),
    Option("profile", "profiles to certify, comma-separated (default: by policy)"),
    Option(
        "grant-source",
        "admin | password | authcode | command:CMD | file:PATH (default: admin if "
        "the target has a rotcert admin API)",
    ),
    Option("username", "user for the password grant (password: ROTCERT_PASSWORD)"),
    Option("redirect-uri", "redirect URI for the authcode grant source"),
    Option("scope", "scope to ask for when minting a family"),
    Option("time", "freeze | admin | wait (default: by target)"),
    Option(
        "wait-budget",
        "seconds of real waiting allowed per scenario when time cannot be moved",
        "0",
    ),
    Option("timeout", "seconds before a request to the target is abandoned", "10"),
    Option("race-threads", "parallel refreshes per race round (2 to 256)", "8"),
    Option("race-rounds", "race rounds", "20"),
    Option("summary", "write the JSON summary here"),
    Option("broken-mode", "embedded target only: switch on a broken mode (demo)"),
    Option("enable", "run the scenarios even with no other rotcert option", flag=True),
]

SECRETS = {
    "client_secret": "ROTCERT_CLIENT_SECRET",
    "second_client_secret": "ROTCERT_SECOND_CLIENT_SECRET",
    "password": "ROTCERT_PASSWORD",
}


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("rotcert", "rotcert: certify refresh token rotation")
    for opt in OPTIONS:
        if opt.flag:
            group.addoption(
                f"--rotcert-{opt.name}",
                action="store_true",
                dest=opt.dest,
                default=False,
                help=opt.help,
            )
            parser.addini(opt.dest, opt.help, type="bool", default=False)
        else:
            group.addoption(
                f"--rotcert-{opt.name}",
                dest=opt.dest,
                default=None,
                metavar="VALUE",
                help=opt.help,
            )
            parser.addini(opt.dest, opt.help, default=None)


# How a flag reads from the environment: ROTCERT_ENABLE=0 must not switch it on.
TRUE_WORDS = ("1", "true", "yes", "on")


def option(config: pytest.Config, name: str) -> str | None:
    """Command line first, then the environment, then the ini file, then default."""
    opt = next(o for o in OPTIONS if o.name == name)
    value = config.getoption(opt.dest)
    if value not in (None, False):
        return value
    if os.environ.get(opt.env):
        if opt.flag:
            # A flag's variable is a boolean, not "anything non-empty".
            on = os.environ[opt.env].strip().lower() in TRUE_WORDS
            return "1" if on else None
        return os.environ[opt.env]
    ini = config.getini(opt.dest)
    if ini not in (None, "", False, []):
        return str(ini)
    return opt.default


def cli_flags(message: str) -> str:
    """Name options the way the user gave them: ``rotcert server`` takes
    ``--timeout`` where pytest takes ``--rotcert-timeout``."""
    if os.environ.get("ROTCERT_CLI"):
        return message.replace("--rotcert-", "--")
    return message


def secret(name: str) -> str | None:
    return os.environ.get(SECRETS[name]) or None


def is_active(config: pytest.Config) -> bool:
    """The plugin stays out of the way unless one of its options is used."""
    for opt in OPTIONS:
        if opt.default is not None:
            # An option with a default counts only when set explicitly: on the
            # command line, in the environment, or (like every other key) in the
            # ini file.
            if config.getoption(opt.dest) is not None or os.environ.get(opt.env):
                return True
            if config.getini(opt.dest) not in (None, ""):
                return True
            continue
        if option(config, opt.name):
            return True
    return False
