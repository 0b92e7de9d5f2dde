"""Adapters: how the suite drives a client, and the reference adapters by name.

``resolve(spec)`` turns what a user typed after ``--adapter`` into an adapter: a
registered name (the three real libraries, ``naive``, ``reference`` and the
``flawed-*`` clients), ``py:module:Class`` for a vendor's Python adapter, or else
a command line run once per action.
"""

from __future__ import annotations

import importlib
import shlex
import shutil
from pathlib import Path

from .protocol import (
    ActionFailed,
    ActionResult,
    Adapter,
    AdapterEnv,
    AdapterError,
    CommandAdapter,
    InProcessAdapter,
    PythonAdapter,
    ReauthRequired,
    run_together,
)

__all__ = [
    "ADAPTERS",
    "LIBRARIES",
    "ActionFailed",
    "ActionResult",
    "Adapter",
    "AdapterEnv",
    "AdapterError",
    "CommandAdapter",
    "InProcessAdapter",
    "PythonAdapter",
    "ReauthRequired",
    "names",
    "python_class",
    "resolve",
    "run_together",
]

# name -> (module, class, the distribution it needs, what it is)
ADAPTERS: dict[str, tuple[str, str, str | None, str]] = {
    "requests-oauthlib": (
        "conformance.adapters.lib_requests_oauthlib",
        "RequestsOAuthlibAdapter",
        "requests-oauthlib",
        "requests-oauthlib OAuth2Session with auto-refresh",
    ),
    "authlib": (
        "conformance.adapters.lib_authlib",
        "AuthlibAdapter",
        "authlib",
        "Authlib OAuth2Session (requests client) with token_endpoint",
    ),
    "google-auth": (
        "conformance.adapters.lib_google_auth",
        "GoogleAuthAdapter",
        "google-auth",
        "google-auth Credentials with a custom token_uri, AuthorizedSession",
    ),
    "databricks-sdk": (
        "conformance.adapters.lib_databricks_sdk",
        "DatabricksSdkAdapter",
        "databricks-sdk",
        "Databricks SDK for Python: external-browser (U2M) OAuth and its token cache",
    ),
    "naive": (
        "conformance.adapters.reference",
        "NaiveClient",
        None,
        "a deliberately naive client that keeps the first refresh token",
    ),
    "reference": (
        "conformance.adapters.reference",
        "ReferenceClient",
        None,
        "rotcert's own correct client: the control every scenario can pass",
    ),
}

LIBRARIES = ("requests-oauthlib", "authlib", "google-auth", "databricks-sdk")


def names() -> list[str]:
    """Every registered adapter name, the flawed clients included."""
    from .reference import FLAWED

    return [*ADAPTERS, *FLAWED]


def python_class(name: str) -> type[PythonAdapter]:
    """The Python adapter class registered under ``name``."""
    from .reference import FLAWED, flawed_class

    if name in FLAWED:
        return flawed_class(name)
    if name not in ADAPTERS:
        raise AdapterError(
            f"no adapter is registered as {name!r}; registered: {', '.join(names())}"
        )
    module, attribute, distribution, _ = ADAPTERS[name]
    try:
        return getattr(importlib.import_module(module), attribute)
    except ImportError as exc:
        raise AdapterError(
            f"adapter {name!r} needs {distribution or 'a missing package'} "
            f"({exc.name} is not installed): pip install 'rotcert[clients]'"
        ) from None


def _import_spec(spec: str) -> type[PythonAdapter]:
    target = spec.removeprefix("py:")
    module, _, attribute = target.partition(":")
    if not module or not attribute:
        raise AdapterError(f"{spec!r}: write a Python adapter as py:module:Class")
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        raise AdapterError(f"cannot load Python adapter {spec!r}: {exc}") from None


def resolve(spec: str) -> Adapter:
    """An adapter from a registered name, ``py:module:Class`` or a command."""
    spec = spec.strip()
    if not spec:
        raise AdapterError("--adapter is empty; give a name or a command")
    if spec in ADAPTERS or spec in names():
        return InProcessAdapter(python_class(spec), spec)
    if spec.startswith("py:"):
        cls = _import_spec(spec)
        return InProcessAdapter(cls, getattr(cls, "name", spec))
    try:
        argv = shlex.split(spec)
    except ValueError as exc:
        raise AdapterError(f"cannot read the adapter command {spec!r}: {exc}") from None
    program = argv[0]
    if shutil.which(program) is None and not Path(program).is_file():
        raise AdapterError(
            f"{program!r} is neither a registered adapter ({', '.join(names())}) nor "
            "a command found on PATH"
        )
    return CommandAdapter(argv, spec)
