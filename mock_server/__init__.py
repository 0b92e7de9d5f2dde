"""rotcert's mock authorization server with configurable refresh token rotation."""

from .app import create_app
from .policy import (
    DATABRICKS_EXAMPLE,
    AppIntegration,
    Policy,
    PolicyError,
    load_integration,
    load_policy,
    load_policy_file,
    load_preset,
    preset_names,
)
from .server import MockServer
from .sqlite_store import SQLiteStore
from .store import MemoryStore

__all__ = [
    "DATABRICKS_EXAMPLE",
    "AppIntegration",
    "MemoryStore",
    "MockServer",
    "Policy",
    "PolicyError",
    "SQLiteStore",
    "create_app",
    "load_integration",
    "load_policy",
    "load_policy_file",
    "load_preset",
    "preset_names",
]
