"""The rotation state machine: grants, refresh, reuse detection, revocation.

Pure Python over a store and a clock; no Flask. Every decision about one presented
refresh token is taken and written inside one store transaction, so under any
concurrency a token yields at most one successor (or, inside grace, the same one).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from . import snapshot
from .broken import BROKEN_MODES_SETTING
from .clock import Clock
from .errors import InvalidGrant, InvalidRequest, InvalidScope, InvalidToken, OAuthError
from .policy import Policy
from .records import AccessRecord, Client, Family, RefreshRecord
from .store import Store, Transaction
from .tokens import fingerprint, new_token, seal, token_hash, unseal

__all__ = ["TokenAuthority", "TokenSet"]

# How long the broken non-atomic mode waits between check and commit: wide enough
# that parallel refreshes of one token reliably interleave.
NON_ATOMIC_WINDOW_SECONDS = 0.02


@dataclass
class TokenSet:
    """A token response plus what the event log needs to know about it."""

    access_token: str
    expires_in: int
    scope: list[str]
    refresh_token: str | None
    family_id: str
    generation: int
    outcome: str
    presented_fp: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def response(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": " ".join(self.scope),
        }
        if self.refresh_token is not None:
            body["refresh_token"] = self.refresh_token
        return body

    @property
    def issued_fp(self) -> str | None:
        return fingerprint(self.refresh_token) if self.refresh_token else None


@dataclass
class _Checked:
    """A presented refresh token that passed every check, ready to be spent."""

    record: RefreshRecord
    family: Family
    scope: list[str]
    grace_replay: bool = False


class TokenAuthority:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    # ----------------------------------------------------------------- helpers

    def broken_modes(self) -> frozenset[str]:
        # From the request's settings snapshot when there is one (snapshot.py).
        return frozenset(snapshot.read(self.store, BROKEN_MODES_SETTING) or ())

    def _put(self, tx: Transaction, record: Any) -> None:
        key = getattr(record, "token_hash", None) or record.family_id
        family = getattr(record, "family_id", None)
        tx.put(record.kind, key, record.to_json(), family=family)

    def _mint_access(
        self, tx: Transaction, family: Family, scope: list[str], policy: Policy, now
    ) -> tuple[str, AccessRecord]:
        value = new_token()
        record = AccessRecord(
            token_hash=token_hash(value),
            fingerprint=fingerprint(value),
            family_id=family.family_id,
            client_id=family.client_id,
            user=family.user,
            scope=scope,
            issued_at=now,
            expires_at=now + policy.access_ttl,
        )
        self._put(tx, record)
        return value, record

    def _mint_refresh(
        self, tx: Transaction, family: Family, generation: int, policy: Policy, now
    ) -> str:
        value = new_token()
        self._put(
            tx,
            RefreshRecord(
                token_hash=token_hash(value),
                fingerprint=fingerprint(value),
                family_id=family.family_id,
                client_id=family.client_id,
                generation=generation,
                issued_at=now,
                idle_expires_at=now + policy.refresh_ttl,
            ),
        )
        return value

    def _expires_at(
        self, record: RefreshRecord, family: Family, modes: frozenset[str]
    ) -> float | None:
        """When a refresh token dies: its idle TTL, capped by the session lifetime."""
        limits = []
        if "idle_ttl_ignored" not in modes and record.idle_expires_at is not None:
            limits.append(record.idle_expires_at)
        if (
            "absolute_lifetime_ignored" not in modes
            and family.absolute_expires_at is not None
        ):
            limits.append(family.absolute_expires_at)
        return min(limits) if limits else None

    def _revoke_family(
        self,
        tx: Transaction,
        family: Family,
        reason: str,
        now: float,
        with_access: bool,
    ) -> None:
        family.revoked_at = now
        family.revoked_reason = reason
        self._put(tx, family)
        for data in tx.by_family("refresh", family.family_id):
            record = RefreshRecord.from_json(data)
            if record.revoked_at is None:
                record.revoked_at = now
                self._put(tx, record)
        if with_access:
            for data in tx.by_family("access", family.family_id):
                access = AccessRecord.from_json(data)
                if access.revoked_at is None:
                    access.revoked_at = now
                    self._put(tx, access)

    # ------------------------------------------------------------------ grants

    def start_grant(self, client: Client, user: str, scope: list[str]) -> TokenSet:
        """Open a family: the tokens of a code exchange (generation 0)."""
        policy = client.policy
        with self.store.transaction() as tx:
            now = self.clock.now()
            lifetime = policy.absolute_lifetime
            family = Family(
                family_id="fam-" + uuid.uuid4().hex[:16],
                client_id=client.client_id,
                user=user,
                scope=list(scope),
                created_at=now,
                absolute_expires_at=None if lifetime is None else now + lifetime,
            )
            self._put(tx, family)
            access, _ = self._mint_access(tx, family, family.scope, policy, now)
            refresh = self._mint_refresh(tx, family, 0, policy, now)
        return TokenSet(
            access_token=access,
            expires_in=policy.access_ttl,
            scope=family.scope,
            refresh_token=refresh,
            family_id=family.family_id,
            generation=0,
            outcome="issued",
        )

    # ----------------------------------------------------------------- refresh

    def refresh(
        self, client: Client, presented: str, requested_scope: list[str] | None
    ) -> TokenSet:
        """Spend a refresh token. Raises an OAuthError when it cannot be used."""
        policy = client.policy
        with self.store.transaction() as tx:
            modes = self.broken_modes()
            now = self.clock.now()
            checked = self._check(
                tx, client, presented, requested_scope, policy, now, modes
            )
            if (
                not isinstance(checked, OAuthError)
                and "non_atomic_rotation" not in modes
            ):
                result = self._spend(tx, checked, presented, policy, now, modes)
            else:
                result = checked

        if isinstance(result, OAuthError):
            raise result
        if isinstance(result, TokenSet):
            return result

        # Deliberately broken: commit in a second transaction without re-checking,
        # so two requests that both passed the check both get a successor.
        time.sleep(NON_ATOMIC_WINDOW_SECONDS)
        with self.store.transaction() as tx:
            now = self.clock.now()
            return self._spend(tx, result, presented, policy, now, modes)

    def _check(
        self,
        tx: Transaction,
        client: Client,
        presented: str,
        requested_scope: list[str] | None,
        policy: Policy,
        now: float,
        modes: frozenset[str],
    ) -> _Checked | OAuthError:
        data = tx.get("refresh", token_hash(presented))
        if data is None:
            return InvalidGrant(
                "The refresh token is unknown.", reason="unknown_refresh_token"
            )
        record = RefreshRecord.from_json(data)
        family = Family.from_json(tx.get("family", record.family_id))
        where = {"family_id": family.family_id, "generation": record.generation}

        # A token of another client is refused without touching it (RFC 6749 §6).
        if record.client_id != client.client_id:
            return InvalidGrant(
                "The refresh token was issued to another client.",
                reason="wrong_client",
                **where,
            )
        if family.revoked_at is not None:
            return InvalidGrant(
                "The refresh token's grant has been revoked.",
                reason="family_revoked",
                **where,
            )
        if record.revoked_at is not None:
            return InvalidGrant(
                "The refresh token has been revoked.", reason="revoked", **where
            )
        expires_at = self._expires_at(record, family, modes)
        if expires_at is not None and now >= expires_at:
            session_end = family.absolute_expires_at
            reason = (
                "session_expired"
                if session_end is not None and expires_at == session_end
                else "expired"
            )
            return InvalidGrant(
                "The refresh token has expired.", reason=reason, **where
            )

        # Reuse is judged before scope: a replayed token must not slip past
        # detection by also asking for more scope.
        spent = record.consumed_at is not None or record.superseded
        grace_replay = False
        if spent and "reuse_accepted" not in modes:
            grace_replay = (
                policy.grace > 0
                and not record.superseded
                and now - record.consumed_at <= policy.grace
                # Grace covers only the immediate predecessor of the newest token.
                and record.generation == family.generation - 1
            )
            if not grace_replay:
                if (
                    policy.reuse_detection == "revoke_family"
                    and "family_not_revoked" not in modes
                ):
                    self._revoke_family(
                        tx,
                        family,
                        "reuse",
                        now,
                        with_access=policy.reuse_revokes_access_tokens,
                    )
                return InvalidGrant(
                    "The refresh token was already used.",
                    reason="reuse_detected",
                    **where,
                )

        scope = family.scope if requested_scope is None else requested_scope
        broadened = sorted(set(scope) - set(family.scope))
        if broadened:
            return InvalidScope(
                "The requested scope exceeds the granted scope: " + " ".join(broadened),
                reason="scope_broadened",
                **where,
            )
        return _Checked(record, family, scope, grace_replay=grace_replay)

    def _spend(
        self,
        tx: Transaction,
        checked: _Checked,
        presented: str,
        policy: Policy,
        now: float,
        modes: frozenset[str],
    ) -> TokenSet:
        record, family, scope = checked.record, checked.family, checked.scope
        presented_fp = record.fingerprint

        if checked.grace_replay and policy.grace_response == "same_successor":
            replay = unseal(presented, record.sealed_response or "")
            if replay is not None:
                return TokenSet(
                    access_token=replay["access_token"],
                    expires_in=replay["expires_in"],
                    scope=replay["scope"].split(),
                    refresh_token=replay.get("refresh_token"),
                    family_id=family.family_id,
                    generation=record.generation + 1,
                    outcome="grace_replay",
                    presented_fp=presented_fp,
                )

        access, _ = self._mint_access(tx, family, scope, policy, now)
        rotating = policy.single_use and "no_rotation" not in modes

        if not rotating:
            if policy.single_use or policy.non_rotating_response == "same":
                refresh: str | None = presented
                generation = record.generation
            elif policy.non_rotating_response == "omit":
                refresh, generation = None, record.generation
            else:
                generation = family.generation + 1
                refresh = self._mint_refresh(tx, family, generation, policy, now)
                family.generation = generation
                self._put(tx, family)
            return TokenSet(
                access_token=access,
                expires_in=policy.access_ttl,
                scope=scope,
                refresh_token=refresh,
                family_id=family.family_id,
                generation=generation,
                outcome="not_rotated",
                presented_fp=presented_fp,
            )

        generation = record.generation + 1
        if checked.grace_replay and record.successor_hash:
            # A new pair inside grace replaces the successor nobody may have seen.
            old = tx.get("refresh", record.successor_hash)
            if old is not None:
                successor = RefreshRecord.from_json(old)
                successor.superseded = True
                self._put(tx, successor)

        refresh = self._mint_refresh(tx, family, generation, policy, now)
        family.generation = max(family.generation, generation)
        self._put(tx, family)
        tokens = TokenSet(
            access_token=access,
            expires_in=policy.access_ttl,
            scope=scope,
            refresh_token=refresh,
            family_id=family.family_id,
            generation=generation,
            outcome="grace_replay" if checked.grace_replay else "rotated",
            presented_fp=presented_fp,
        )
        if record.consumed_at is None:
            record.consumed_at = now
        record.successor_hash = token_hash(refresh)
        if policy.grace and policy.grace_response == "same_successor":
            record.sealed_response = seal(presented, tokens.response())
        self._put(tx, record)
        return tokens

    def burn(self, presented: str) -> None:
        """Mark a refresh token consumed without issuing anything.

        Only the broken mode ``consume_on_failed_client_auth`` calls this.
        """
        with self.store.transaction() as tx:
            data = tx.get("refresh", token_hash(presented))
            if data is not None and data["consumed_at"] is None:
                record = RefreshRecord.from_json(data)
                record.consumed_at = self.clock.now()
                self._put(tx, record)

    # ------------------------------------------------------ revoke, introspect

    def revoke(self, client: Client, presented: str) -> str | None:
        """RFC 7009. A refresh token takes its whole family with it; an access
        token goes alone. Returns the revoked family id, if any."""
        with self.store.transaction() as tx:
            now = self.clock.now()
            digest = token_hash(presented)
            # The hint is only a hint (RFC 7009 §2.1): always search both kinds.
            for kind in ("refresh", "access"):
                data = tx.get(kind, digest)
                if data is None:
                    continue
                if data["client_id"] != client.client_id:
                    raise InvalidGrant(
                        "The token was issued to another client.",
                        reason="wrong_client",
                    )
                family = Family.from_json(tx.get("family", data["family_id"]))
                if kind == "refresh":
                    if family.revoked_at is None:
                        self._revoke_family(tx, family, "revoked", now, True)
                    return family.family_id
                access = AccessRecord.from_json(data)
                if access.revoked_at is None:
                    access.revoked_at = now
                    self._put(tx, access)
                return None
        return None

    def introspect(self, client: Client, presented: str) -> dict[str, Any]:
        """RFC 7662: inactive, unknown and foreign tokens all look the same."""
        inactive = {"active": False}
        with self.store.transaction(write=False) as tx:
            modes = self.broken_modes()
            now = self.clock.now()
            digest = token_hash(presented)
            refresh = tx.get("refresh", digest)
            access = tx.get("access", digest)
            data = refresh or access
            if data is None or data["client_id"] != client.client_id:
                return inactive
            family = Family.from_json(tx.get("family", data["family_id"]))
            if data.get("revoked_at") is not None:
                return inactive
            # A revoked family takes its refresh tokens with it, but its access tokens
            # only when they were revoked themselves: with reuse_revokes_access_tokens
            # false they stay valid at the resource (validate_access), so they must
            # stay active here too.
            if refresh is not None and family.revoked_at is not None:
                return inactive
            if refresh is not None:
                record = RefreshRecord.from_json(refresh)
                if record.consumed_at is not None or record.superseded:
                    return inactive
                expires_at = self._expires_at(record, family, modes)
                kind, issued = "refresh_token", record.issued_at
            else:
                expires_at = access["expires_at"]
                kind, issued = "access_token", access["issued_at"]
            if expires_at is not None and now >= expires_at:
                return inactive
        answer: dict[str, Any] = {
            "active": True,
            "token_type": kind,
            "client_id": family.client_id,
            "sub": family.user,
            "scope": " ".join(data.get("scope") or family.scope),
            "iat": int(issued),
        }
        if expires_at is not None:
            answer["exp"] = int(expires_at)
        return answer

    def validate_access(self, presented: str) -> AccessRecord:
        """The protected resource's check (RFC 6750 §3.1)."""
        with self.store.transaction(write=False) as tx:
            now = self.clock.now()
            digest = token_hash(presented)
            data = tx.get("access", digest)
            if data is None:
                if tx.get("refresh", digest) is not None:
                    raise InvalidRequest(
                        "A refresh token was sent to the resource server.",
                        reason="refresh_token_at_resource",
                    )
                raise InvalidToken("The access token is unknown.", reason="unknown")
            access = AccessRecord.from_json(data)
            where = {"family_id": access.family_id}
            if access.revoked_at is not None:
                raise InvalidToken(
                    "The access token has been revoked.", reason="revoked", **where
                )
            if now >= access.expires_at:
                raise InvalidToken(
                    "The access token has expired.", reason="expired", **where
                )
        return access

    def lineage(self, family_id: str) -> dict[str, Any] | None:
        """A family and its refresh tokens, by fingerprint, for tests and reports."""
        with self.store.transaction(write=False) as tx:
            data = tx.get("family", family_id)
            if data is None:
                return None
            tokens = sorted(
                tx.by_family("refresh", family_id), key=lambda r: r["generation"]
            )
        for token in tokens:
            token.pop("token_hash", None)
            token.pop("successor_hash", None)
            token.pop("sealed_response", None)
        return {"family": data, "refresh_tokens": tokens}
