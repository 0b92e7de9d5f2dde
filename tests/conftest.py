"""Shared fixtures: both stores, a mock server on each, and a way to set a policy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mock_server import DATABRICKS_EXAMPLE, MemoryStore, MockServer, SQLiteStore
from mock_server.policy import load_policy
from mock_server.records import Client
from mock_server.store import Store

SetPolicy = Callable[..., Client]


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path) -> Store:
    """Every test that asks for a store runs once per store."""
    if request.param == "memory":
        return MemoryStore()
    return SQLiteStore(tmp_path / "rotcert.db")


@pytest.fixture
def policy() -> dict[str, Any]:
    """Policy fields laid over the Databricks example for every client of `server`.

    Override it in a module, or with ``@pytest.mark.parametrize("policy", [...])``.
    """
    return {}


@pytest.fixture
def set_policy(server: MockServer) -> SetPolicy:
    """``set_policy(role_or_client_id, **fields)``: give one client a policy.

    The fields are laid over the Databricks example policy and validated the way the
    admin API validates them; the saved client is returned.
    """

    def apply(who: str, **fields: Any) -> Client:
        creds = server.credentials.get(who)
        return _apply_policy(server, creds.client_id if creds else who, fields)

    return apply


@pytest.fixture
def server(store: Store, policy: dict[str, Any]) -> MockServer:
    """A mock server on `store`; its three clients carry `policy`."""
    server = MockServer(store=store)
    if policy:
        for creds in server.credentials.values():
            _apply_policy(server, creds.client_id, policy)
    return server


def _apply_policy(server: MockServer, client_id: str, fields: dict) -> Client:
    client = server.client(client_id)
    if client is None:
        raise LookupError(f"no client {client_id!r} on this server")
    document = {**DATABRICKS_EXAMPLE["token_access_policy"], **fields}
    client.policy_json = load_policy(document).to_json()
    server.save_client(client)
    return client
