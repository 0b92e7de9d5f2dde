"""What the store holds, as typed records. Token values appear only as hashes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from functools import cache, lru_cache
from typing import Any, TypeVar

from .policy import Policy, load_policy

__all__ = ["Client", "Family", "RefreshRecord", "AccessRecord", "AuthCode", "Record"]

R = TypeVar("R", bound="Record")


class Record:
    kind: str = ""

    def to_json(self) -> dict[str, Any]:
        # Shallow on purpose: both stores serialize what they keep, so a list shared
        # with the record cannot change stored state. dataclasses.asdict deep-copies
        # and was an eighth of a refresh grant's time.
        return {name: getattr(self, name) for name in _names(type(self))}

    @classmethod
    def from_json(cls: type[R], data: dict[str, Any]) -> R:
        names = _names(cls)
        return cls(**{k: v for k, v in data.items() if k in names})


@cache
def _names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


@dataclass
class Client(Record):
    kind = "client"

    client_id: str
    secret_hash: str | None
    name: str = "rotcert client"
    scopes: list[str] = field(default_factory=list)
    redirect_urls: list[str] = field(default_factory=list)
    policy_json: dict[str, Any] = field(default_factory=dict)
    integration_id: str | None = None
    account_id: str | None = None
    created_at: float = 0.0

    @property
    def confidential(self) -> bool:
        return self.secret_hash is not None

    @property
    def policy(self) -> Policy:
        return _parsed_policy(json.dumps(self.policy_json, sort_keys=True))


@dataclass
class Family(Record):
    """One grant: everything rotated out of one user authorization."""

    kind = "family"

    family_id: str
    client_id: str
    user: str
    scope: list[str]
    created_at: float
    absolute_expires_at: float | None
    generation: int = 0
    revoked_at: float | None = None
    revoked_reason: str | None = None


@dataclass
class RefreshRecord(Record):
    kind = "refresh"

    token_hash: str
    fingerprint: str
    family_id: str
    client_id: str
    generation: int
    issued_at: float
    idle_expires_at: float | None
    consumed_at: float | None = None
    successor_hash: str | None = None
    superseded: bool = False
    revoked_at: float | None = None
    sealed_response: str | None = None


@dataclass
class AccessRecord(Record):
    kind = "access"

    token_hash: str
    fingerprint: str
    family_id: str
    client_id: str
    user: str
    scope: list[str]
    issued_at: float
    expires_at: float
    revoked_at: float | None = None


@dataclass
class AuthCode(Record):
    kind = "code"

    code_hash: str
    client_id: str
    user: str
    scope: list[str]
    redirect_uri: str | None
    code_challenge: str | None
    expires_at: float
    used: bool = False


@lru_cache(maxsize=256)
def _parsed_policy(text: str) -> Policy:
    # Validating the client's policy on every token request was a tenth of a
    # refresh; a Policy is immutable, so each distinct document is parsed once.
    return load_policy(json.loads(text))
