"""Keep tokens and secrets out of transcripts, reports and summaries.

Every value a report shows goes through a Redactor first. It knows secrets two
ways: the ones registered with add(), and the values of fields whose name says they
are secret (access_token, client_secret, the Authorization header, ...), wherever
such a field appears. Either way the value becomes its fingerprint, the same
"fp:" + 10 hex chars the mock server uses, so a reader can still follow one token
through a transcript.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus

from mock_server.tokens import fingerprint

__all__ = [
    "AUTHORIZATION_HEADERS",
    "MIN_SECRET_LENGTH",
    "SECRET_FIELDS",
    "Redactor",
    "fingerprint",
    "is_fingerprint",
]

# Names whose values are secret in JSON bodies, form bodies and query strings.
SECRET_FIELDS = (
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "code_verifier",
    "password",
    "code",
    "token",
)

AUTHORIZATION_HEADERS = ("authorization", "proxy-authorization")

# Shorter registered values would match random substrings of ordinary text.
MIN_SECRET_LENGTH = 8

_FINGERPRINT = re.compile(r"fp:[0-9a-f]{10}")

_NAMES = "|".join(SECRET_FIELDS)

# "name": "value" in JSON; the value may hold escapes.
_JSON_FIELD = re.compile(r'("(?:' + _NAMES + r')"\s*:\s*")((?:[^"\\]|\\.)*)(")')
# The same members holding a bare number: some servers send tokens that way.
_JSON_NUMBER_FIELD = re.compile(r'("(?:' + _NAMES + r')"\s*:\s*)(-?\d[\d.eE+-]*)')

# name=value in form bodies, query strings and free text; a name must not be the
# tail of a longer word (refresh_token is not token).
_FORM_FIELD = re.compile(r"(?<![A-Za-z0-9_.%-])((?:" + _NAMES + r")=)([^&\s#\"'<>]+)")

# Authorization: Basic xyz, in free text or in a JSON / repr dump of headers.
_AUTH_TEXT = re.compile(
    r"((?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?)"
    r"([A-Za-z][A-Za-z0-9_.-]*)(\s+)([^\s\"',}\]]+)",
    re.IGNORECASE,
)


def is_fingerprint(value: object) -> bool:
    return isinstance(value, str) and _FINGERPRINT.fullmatch(value) is not None


def _spellings(secret: str) -> set[str]:
    """The ways a secret can appear in a transcript: raw, form- or JSON-encoded."""
    return {
        secret,
        quote_plus(secret, safe=""),
        quote(secret, safe=""),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
    }


class Redactor:
    """Replaces secrets with fingerprints; safe to share between threads."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._lock = threading.Lock()
        self._labels: dict[str, str | None] = {}
        self._spelled: dict[str, str] = {}
        self._pattern: re.Pattern[str] | None = None
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None, label: str | None = None) -> None:
        """Register a secret; None, fingerprints and short values are ignored."""
        if isinstance(secret, int) and not isinstance(secret, bool):
            # A server that sends a token as a JSON number still sent a token.
            secret = str(secret)
        if not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH:
            return
        if is_fingerprint(secret):
            return

        fp = fingerprint(secret)
        with self._lock:
            if secret in self._labels:
                return
            self._labels[secret] = label
            for spelling in _spellings(secret):
                if len(spelling) >= MIN_SECRET_LENGTH:
                    self._spelled.setdefault(spelling, fp)
            self._pattern = None

    def labels(self) -> dict[str, str | None]:
        """Fingerprint to label of every registered secret."""
        with self._lock:
            return {fingerprint(s): label for s, label in self._labels.items()}

    def __len__(self) -> int:
        with self._lock:
            return len(self._labels)

    def redact(self, text: str) -> str:
        """The text with every secret field and registered secret fingerprinted."""
        if not text:
            return text

        text = _AUTH_TEXT.sub(self._auth_match, text)
        text = _JSON_FIELD.sub(self._json_match, text)
        text = _JSON_NUMBER_FIELD.sub(
            lambda m: m.group(1) + '"' + self._fingerprint_value(m.group(2)) + '"', text
        )
        text = _FORM_FIELD.sub(self._form_match, text)

        pattern, spelled = self._snapshot()
        if pattern is None:
            return text
        return pattern.sub(lambda m: spelled[m.group(0)], text)

    def redact_headers(self, headers: Mapping[str, str] | None) -> dict[str, str]:
        """Header values redacted; Authorization keeps its scheme."""
        redacted: dict[str, str] = {}
        for name, value in (headers or {}).items():
            value = value if isinstance(value, str) else str(value)
            if name.lower() in AUTHORIZATION_HEADERS:
                redacted[name] = self.redact_authorization(value)
            elif name.lower() in ("cookie", "set-cookie"):
                # Servers put sessions and even tokens in cookies: never show one.
                redacted[name] = self._fingerprint_value(value)
            else:
                redacted[name] = self.redact(value)
        return redacted

    def redact_authorization(self, value: str) -> str:
        """ "Basic abc" -> "Basic fp:..."; the credential is learned as a secret."""
        scheme, _, credential = value.strip().partition(" ")
        credential = credential.strip()
        if not credential:
            return self._fingerprint_value(scheme) if scheme else value
        return f"{scheme} {self._credential(scheme, credential)}"

    def redact_json(self, value: Any) -> Any:
        """A JSON-ready copy with secret-named members fingerprinted and every
        string redacted, for targets, policies and other structured data."""
        if isinstance(value, Mapping):
            copy: dict[str, Any] = {}
            for key, member in value.items():
                name = str(key)
                # A server chooses its member names too: they are text to redact.
                shown = self.redact(name)
                if name.lower() in SECRET_FIELDS:
                    copy[shown] = self._secret_json(member)
                elif name.lower() in AUTHORIZATION_HEADERS and isinstance(member, str):
                    copy[shown] = self.redact_authorization(member)
                else:
                    copy[shown] = self.redact_json(member)
            return copy
        if isinstance(value, (list, tuple)):
            return [self.redact_json(item) for item in value]
        if isinstance(value, str):
            return self.redact(value)
        return value

    def redact_body(self, body: str, indent: int | None = None) -> str:
        """A message body redacted for a transcript or a report.

        JSON is parsed before it is redacted: a server that spells a member name
        or a token with escapes (refresh\\u005ftoken) slips past redaction of the
        raw text. Its redacted structure is written back out, with ``indent``.
        """
        try:
            parsed = json.loads(body)
            shown = json.dumps(
                self.redact_json(parsed), indent=indent, ensure_ascii=False
            )
        except (ValueError, RecursionError):  # not JSON, or nested past reading
            return self.redact(body)

        # The decoded text gets the text pass every other value gets, for what the
        # structure hides from redact_json (a name=value pair inside a member name).
        return self.redact(shown)

    # ------------------------------------------------------------------ private

    def _secret_json(self, value: Any) -> Any:
        """A secret-named member's value, every string and number in it
        fingerprinted: servers send tokens as JSON numbers too."""
        if isinstance(value, Mapping):
            return {self.redact(str(k)): self._secret_json(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._secret_json(item) for item in value]
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, (str, int, float)):
            return self._fingerprint_value(str(value))
        return value

    def _snapshot(self) -> tuple[re.Pattern[str] | None, dict[str, str]]:
        with self._lock:
            if self._pattern is None and self._spelled:
                # Longest first, so a secret that contains another wins.
                ordered = sorted(self._spelled, key=len, reverse=True)
                self._pattern = re.compile("|".join(map(re.escape, ordered)))
            return self._pattern, self._spelled

    def _fingerprint_value(self, value: str) -> str:
        if not value or is_fingerprint(value):
            return value
        self.add(value)
        return fingerprint(value)

    def _credential(self, scheme: str, credential: str) -> str:
        if is_fingerprint(credential):
            return credential
        if scheme.lower() == "basic":
            # RFC 6749 §2.3.1: id and secret are form-encoded, then base64.
            try:
                decoded = base64.b64decode(credential, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            _, colon, secret = decoded.partition(":")
            if colon:
                self.add(unquote_plus(secret), "client_secret")
        return self._fingerprint_value(credential)

    def _auth_match(self, match: re.Match[str]) -> str:
        prefix, scheme, space, credential = match.groups()
        return prefix + scheme + space + self._credential(scheme, credential)

    def _json_match(self, match: re.Match[str]) -> str:
        raw = match.group(2)
        try:
            value = json.loads('"' + raw + '"')
        except ValueError:
            value = raw
        return match.group(1) + self._fingerprint_value(value) + match.group(3)

    def _form_match(self, match: re.Match[str]) -> str:
        value = unquote_plus(match.group(2))
        return match.group(1) + self._fingerprint_value(value)
