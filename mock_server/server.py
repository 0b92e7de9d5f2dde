"""The mock server's state: store, clock, token authority, clients and events."""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import snapshot
from .broken import BROKEN_MODES, BROKEN_MODES_SETTING, FAULT_KINDS, FAULTS_SETTING
from .clock import OFFSET_SETTING, Clock
from .policy import DATABRICKS_EXAMPLE, AppIntegration, Policy, load_integration
from .records import Client
from .rotation import TokenAuthority
from .store import MemoryStore, Store
from .tokens import token_hash

__all__ = ["MockServer", "Credentials", "GRANT_TYPES"]

log = logging.getLogger(__name__)

DEFAULT_USER = "user@example.com"
DEFAULT_ACCOUNT = "00000000-0000-4000-8000-000000000000"
CREDENTIALS_SETTING = "default_credentials"
GRANT_TYPES_SETTING = "grant_type_restrictions"
GRANT_TYPES = ("authorization_code", "refresh_token")
# What an OAuth request reads from one snapshot (see snapshot.py).
SNAPSHOT_SETTINGS = (
    OFFSET_SETTING,
    BROKEN_MODES_SETTING,
    FAULTS_SETTING,
    GRANT_TYPES_SETTING,
)


@dataclass(frozen=True)
class Credentials:
    """Client credentials the server made at start, for printing and for tests."""

    client_id: str
    client_secret: str | None

    def to_json(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "client_secret": self.client_secret}


class MockServer:
    """Everything one mock authorization server knows, shared by its views.

    Three clients are made at start, all with the integration's policy: the main
    client (confidential unless the integration says otherwise), a second
    confidential client for cross-client checks, and a public client.
    """

    def __init__(
        self,
        integration: AppIntegration | None = None,
        store: Store | None = None,
        user: str = DEFAULT_USER,
        record: str | Path | None = None,
        issuer: str | None = None,
    ) -> None:
        self.integration = integration or load_integration(DATABRICKS_EXAMPLE)
        self.store = store or MemoryStore()
        self.clock = Clock(self.store)
        self.authority = TokenAuthority(self.store, self.clock)
        self.user = user
        self.issuer = issuer
        self.account_id = DEFAULT_ACCOUNT
        self._record_path = Path(record) if record else None
        self._record_lock = threading.Lock()
        self.credentials = self._seed_clients()

    # ----------------------------------------------------------------- clients

    def _seed_clients(self) -> dict[str, Credentials]:
        """Make the default clients once; a restarted SQLite store keeps them."""
        with self.store.transaction() as tx:
            saved = tx.get("settings", CREDENTIALS_SETTING)
            if saved:
                return {role: Credentials(**c) for role, c in saved.items()}
            made = {
                "main": self._new_client(
                    tx, "rotcert-client", self.integration.confidential
                ),
                "second": self._new_client(tx, "rotcert-second", True),
                "public": self._new_client(tx, "rotcert-public", False),
            }
            tx.put(
                "settings",
                CREDENTIALS_SETTING,
                {role: c.to_json() for role, c in made.items()},
            )
            return made

    def _new_client(self, tx, client_id: str, confidential: bool) -> Credentials:
        secret = secrets.token_urlsafe(24) if confidential else None
        client = Client(
            client_id=client_id,
            secret_hash=token_hash(secret) if secret else None,
            name=self.integration.name,
            scopes=list(self.integration.scopes),
            redirect_urls=list(self.integration.redirect_urls),
            policy_json=self.integration.policy.to_json(),
            created_at=time.time(),
        )
        tx.put("client", client_id, client.to_json())
        return Credentials(client_id, secret)

    def create_client(
        self,
        name: str,
        confidential: bool,
        scopes: list[str],
        redirect_urls: list[str],
        policy: Policy,
        account_id: str | None = None,
    ) -> tuple[Client, str | None]:
        secret = secrets.token_urlsafe(24) if confidential else None
        client = Client(
            client_id=str(uuid.uuid4()),
            secret_hash=token_hash(secret) if secret else None,
            name=name,
            scopes=scopes,
            redirect_urls=redirect_urls,
            policy_json=policy.to_json(),
            integration_id=str(uuid.uuid4()),
            account_id=account_id,
            created_at=self.clock.now(),
        )
        self.save_client(client)
        return client, secret

    def client(self, client_id: str) -> Client | None:
        with self.store.transaction(write=False) as tx:
            data = tx.get("client", client_id)
        return None if data is None else Client.from_json(data)

    def clients(self) -> list[Client]:
        with self.store.transaction(write=False) as tx:
            return [Client.from_json(c) for c in tx.all("client")]

    def save_client(self, client: Client) -> None:
        with self.store.transaction() as tx:
            tx.put("client", client.client_id, client.to_json())

    def delete_client(self, client_id: str) -> None:
        with self.store.transaction() as tx:
            tx.delete("client", client_id)

    # --------------------------------------------------- broken modes, faults

    def setting(self, name: str, default: Any = None) -> Any:
        value = snapshot.read(self.store, name)
        return default if value is None else value

    def set_broken_modes(self, modes: list[str]) -> None:
        unknown = sorted(set(modes) - set(BROKEN_MODES))
        if unknown:
            raise ValueError(
                f"unknown broken mode {unknown[0]!r}; known: {', '.join(BROKEN_MODES)}"
            )
        with self.store.transaction() as tx:
            tx.put("settings", BROKEN_MODES_SETTING, sorted(set(modes)))

    def broken_modes(self) -> frozenset[str]:
        return self.authority.broken_modes()

    def add_fault(self, fault: dict[str, Any]) -> None:
        kind = fault.get("kind")
        # Check the type first: a list or object as kind is unhashable and would
        # make the membership test itself fail.
        if not isinstance(kind, str) or kind not in FAULT_KINDS:
            raise ValueError(
                f"unknown fault kind {kind!r}; known: " + ", ".join(FAULT_KINDS)
            )
        if fault.get("client_id") is not None and not isinstance(
            fault["client_id"], str
        ):
            raise ValueError(f"client_id must be a string, got {fault['client_id']!r}")
        with self.store.transaction() as tx:
            faults = tx.get("settings", FAULTS_SETTING) or []
            faults.append(fault)
            tx.put("settings", FAULTS_SETTING, faults)

    def clear_faults(self) -> None:
        with self.store.transaction() as tx:
            tx.put("settings", FAULTS_SETTING, [])

    def take_fault(self, kind: str, client_id: str | None) -> dict[str, Any] | None:
        """Use up one firing of a matching fault, if one is armed."""
        # A token request asks for six kinds of fault and almost never meets one:
        # look first without the write lock, which SQLite serializes across threads.
        if not any(f.get("kind") == kind for f in self.setting(FAULTS_SETTING, [])):
            return None
        with self.store.transaction() as tx:
            faults = tx.get("settings", FAULTS_SETTING) or []
            for fault in faults:
                wanted = fault.get("client_id")
                if fault["kind"] != kind or (wanted and wanted != client_id):
                    continue
                remaining = fault.get("count")
                if remaining is not None:
                    if remaining <= 0:
                        continue
                    fault["count"] = remaining - 1
                tx.put("settings", FAULTS_SETTING, faults)
                return fault
        return None

    def set_grant_types(self, client_id: str, grant_types: list[str]) -> None:
        """Allow a client only these grant types, until the next reset.

        The admin hook for STD-RT-16: a grant type the server supports but the
        client is not allowed is answered ``unauthorized_client``.
        """
        unknown = sorted(set(grant_types) - set(GRANT_TYPES))
        if unknown:
            raise ValueError(
                f"unknown grant type {unknown[0]!r}; known: {', '.join(GRANT_TYPES)}"
            )
        with self.store.transaction() as tx:
            restrictions = tx.get("settings", GRANT_TYPES_SETTING) or {}
            restrictions[client_id] = sorted(set(grant_types))
            tx.put("settings", GRANT_TYPES_SETTING, restrictions)

    def grant_types(self, client_id: str) -> list[str]:
        """The grant types a client may use; all supported ones unless restricted."""
        restrictions = self.setting(GRANT_TYPES_SETTING, {})
        return restrictions.get(client_id, list(GRANT_TYPES))

    def reset(self) -> None:
        """Forget every grant, token, event, fault, broken mode, grant-type
        restriction and clock offset; keep the clients."""
        self.store.clear(keep=("client",))
        with self.store.transaction() as tx:
            tx.put(
                "settings",
                CREDENTIALS_SETTING,
                {role: c.to_json() for role, c in self.credentials.items()},
            )

    # ------------------------------------------------------------------ events

    def record(self, event: dict[str, Any]) -> None:
        """Keep an event: in the store, and as a JSON line when recording."""
        event = {"time": round(self.clock.now(), 3), **event}
        seq = self.store.append_event(event)
        if self._record_path is not None:
            self._append_record(json.dumps({**event, "seq": seq}, sort_keys=True))

    def _append_record(self, line: str) -> None:
        # The event is already in the store and the rotation already committed: a
        # full disk must cost the recording a line, never the client its successor.
        try:
            with self._record_lock, self._record_path.open("a") as out:
                out.write(line + "\n")
        except OSError as error:
            log.warning("could not append to %s: %s", self._record_path, error)
