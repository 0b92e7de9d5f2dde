"""The rotation policy: a superset of Databricks' ``token_access_policy``.

The four Databricks fields keep their names, units and ranges, so a policy written
for the real account API loads unchanged. Every extension is optional; with all of
them omitted the server behaves like Databricks with single-use tokens on.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "DATABRICKS_EXAMPLE",
    "AppIntegration",
    "Policy",
    "PolicyError",
    "load_policy",
    "load_policy_file",
    "preset_names",
    "load_preset",
]

MINUTE = 60
MAX_PROBLEMS_SHOWN = 10
MAX_POLICY_BYTES = 1024 * 1024
TEN_YEARS_MINUTES = 10 * 365 * 24 * 60
SHOWN_LIMIT = 80

# The app-integration example from the Databricks single-use token documentation.
# It must load unchanged and is the server's default policy.
DATABRICKS_EXAMPLE: dict[str, Any] = {
    "confidential": True,
    "name": "Example Tableau Server",
    "redirect_urls": ["https://example.online.tableau.com/auth/add_oauth_token"],
    "scopes": ["all-apis", "offline_access"],
    "token_access_policy": {
        "access_token_ttl_in_minutes": 60,
        "refresh_token_ttl_in_minutes": 1440,
        "enable_single_use_refresh_tokens": True,
        "absolute_session_lifetime_in_minutes": 43200,
    },
}

GRACE_RESPONSES = ("same_successor", "new_pair")
REUSE_DETECTIONS = ("revoke_family", "reject_only")
NON_ROTATING_RESPONSES = ("same", "omit", "new_token_old_valid")
ERROR_SHAPES = ("rfc6749", "databricks")

# Keys an app-integration object may carry besides token_access_policy. The account
# API returns some of them; preset files add their sources and notes.
INTEGRATION_KEYS = {
    "confidential",
    "name",
    "redirect_urls",
    "scopes",
    "user_authorized_scopes",
    "token_access_policy",
    "integration_id",
    "client_id",
    "create_time",
    "created_by",
    "creator_username",
    "description",
    "sources",
    "notes",
}


class PolicyError(ValueError):
    """A policy that cannot be used; the message names field, value and range."""


# What a field check gives back for a value it refused (None is a valid value).
INVALID: Any = object()


@dataclass(frozen=True)
class Policy:
    """Rotation semantics for one client. Durations are exposed in seconds."""

    access_token_ttl_in_minutes: int = 60
    refresh_token_ttl_in_minutes: int = 1440
    enable_single_use_refresh_tokens: bool = True
    absolute_session_lifetime_in_minutes: int | None = None

    # Test-only overrides, in seconds, that take precedence over the minute fields
    # so a real-time run against the mock can use lifetimes of a few seconds.
    access_token_ttl_in_seconds: int | None = None
    refresh_token_ttl_in_seconds: int | None = None
    absolute_session_lifetime_in_seconds: int | None = None

    reuse_grace_period_in_seconds: int = 0
    grace_response: str = "same_successor"
    reuse_detection: str = "revoke_family"
    reuse_revokes_access_tokens: bool = True
    non_rotating_response: str = "same"
    invalid_refresh_token_error: str = "rfc6749"
    absolute_lifetime_requires_single_use: bool = True

    @property
    def access_ttl(self) -> int:
        if self.access_token_ttl_in_seconds is not None:
            return self.access_token_ttl_in_seconds
        return self.access_token_ttl_in_minutes * MINUTE

    @property
    def refresh_ttl(self) -> int:
        if self.refresh_token_ttl_in_seconds is not None:
            return self.refresh_token_ttl_in_seconds
        return self.refresh_token_ttl_in_minutes * MINUTE

    @property
    def absolute_lifetime(self) -> int | None:
        """Seconds from the grant's start after which every token of it is dead."""
        if self.absolute_lifetime_requires_single_use and not self.single_use:
            return None
        if self.absolute_session_lifetime_in_seconds is not None:
            return self.absolute_session_lifetime_in_seconds
        if self.absolute_session_lifetime_in_minutes is None:
            return None
        return self.absolute_session_lifetime_in_minutes * MINUTE

    @property
    def single_use(self) -> bool:
        return self.enable_single_use_refresh_tokens

    @property
    def grace(self) -> int:
        return self.reuse_grace_period_in_seconds

    def to_json(self) -> dict[str, Any]:
        """The policy as JSON, leaving out extensions still at their defaults."""
        defaults = Policy()
        databricks = {
            "access_token_ttl_in_minutes",
            "refresh_token_ttl_in_minutes",
            "enable_single_use_refresh_tokens",
            "absolute_session_lifetime_in_minutes",
        }
        return {
            name: value
            for name, value in asdict(self).items()
            if name in databricks or value != getattr(defaults, name)
        }


@dataclass(frozen=True)
class AppIntegration:
    """The parts of an app-integration object the server uses to make a client."""

    name: str
    confidential: bool
    scopes: tuple[str, ...]
    redirect_urls: tuple[str, ...]
    policy: Policy


def _fail(field: str, value: Any, allowed: str) -> PolicyError:
    return PolicyError(f"policy field {field!r} is {_show(value)}; allowed: {allowed}.")


def _show(value: Any) -> str:
    """The value as JSON, cut short: hostile input must not make a huge message."""
    try:
        shown = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        # Not JSON, an integer too long to print, or nested too deeply.
        shown = f"<{type(value).__name__}>"
    return _clip(shown)


def _clip(text: str) -> str:
    if len(text) <= SHOWN_LIMIT:
        return text
    return text[: SHOWN_LIMIT - 3] + "..."


def _int_in(field: str, value: Any, low: int, high: int, nullable: bool = False):
    if value is None and nullable:
        return None
    # bool is an int subclass in Python; JSON true is not a number of minutes.
    if isinstance(value, bool) or not isinstance(value, int):
        kind = "an integer" + (" or null" if nullable else "")
        raise _fail(field, value, f"{kind} from {low} to {high}")
    if not low <= value <= high:
        raise _fail(field, value, f"an integer from {low} to {high}")
    return value


def _bool(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(field, value, "true or false")
    return value


def _choice(field: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise _fail(field, value, " | ".join(choices))
    return value


class _Problems:
    """Every problem found in one document, so that one message names them all
    and a user fixes a policy in one go instead of one field per run."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def check(self, validate: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``validate(*args)``'s value, or INVALID with its problem noted."""
        try:
            return validate(*args, **kwargs)
        except PolicyError as exc:
            self.messages.append(str(exc))
            return INVALID

    def add(self, error: PolicyError) -> None:
        self.messages.append(str(error))

    def raise_any(self) -> None:
        if len(self.messages) == 1:
            raise PolicyError(self.messages[0])
        if not self.messages:
            return

        # Hostile input can hold thousands of problems: the message stays short.
        shown = self.messages[:MAX_PROBLEMS_SHOWN]
        text = " ".join(f"({number}) {m}" for number, m in enumerate(shown, 1))
        hidden = len(self.messages) - len(shown)
        if hidden:
            text += f" (and {hidden} more)"
        raise PolicyError(f"the policy has {len(self.messages)} problems: {text}")


def _unknown(what: str, names: list[str], known: set[str]) -> PolicyError:
    shown = ", ".join(_clip(repr(name)) for name in names[:MAX_PROBLEMS_SHOWN])
    if len(names) > MAX_PROBLEMS_SHOWN:
        shown += f" (and {len(names) - MAX_PROBLEMS_SHOWN} more)"
    verb = "is" if len(names) == 1 else "are"
    plural = "" if len(names) == 1 else "s"
    return PolicyError(
        f"{what}{plural} {shown} {verb} not known; known fields: "
        + ", ".join(sorted(known))
        + "."
    )


def _policy_from_mapping(raw: dict[str, Any]) -> Policy:
    problems = _Problems()
    policy = _read_policy(raw, problems)
    problems.raise_any()
    assert policy is not None
    return policy


def _read_policy(raw: dict[str, Any], problems: _Problems) -> Policy | None:
    """The policy in ``raw``, or None with every problem noted in ``problems``."""
    known = {f.name for f in fields(Policy)}
    unknown = sorted(set(raw) - known)
    if unknown:
        problems.add(_unknown("policy field", unknown, known))

    values = _policy_values(raw, problems)
    access = values["access_token_ttl_in_minutes"]
    refresh = values["refresh_token_ttl_in_minutes"]
    if INVALID not in (access, refresh) and refresh < access:
        problems.add(
            _fail(
                "refresh_token_ttl_in_minutes",
                refresh,
                f"at least access_token_ttl_in_minutes ({access}) and at most 129600",
            )
        )
    if unknown or INVALID in values.values():
        return None

    policy = Policy(**values)
    if policy.refresh_ttl < policy.access_ttl:
        problems.add(
            _fail(
                "refresh_token_ttl_in_seconds",
                policy.refresh_ttl,
                f"at least the access token TTL ({policy.access_ttl} s)",
            )
        )
    if policy.grace and not policy.single_use:
        problems.add(
            _fail(
                "reuse_grace_period_in_seconds",
                policy.grace,
                "0 when enable_single_use_refresh_tokens is false (grace only "
                "applies to consumed tokens)",
            )
        )
    return None if problems.messages else policy


def _policy_values(raw: dict[str, Any], problems: _Problems) -> dict[str, Any]:
    """Each field's value, checked on its own; INVALID where it is wrong."""
    check = problems.check
    second_limit = TEN_YEARS_MINUTES * MINUTE
    values: dict[str, Any] = {
        "access_token_ttl_in_minutes": check(
            _int_in,
            "access_token_ttl_in_minutes",
            raw.get("access_token_ttl_in_minutes", 60),
            5,
            1440,
        ),
        "refresh_token_ttl_in_minutes": check(
            _int_in,
            "refresh_token_ttl_in_minutes",
            raw.get("refresh_token_ttl_in_minutes", 1440),
            5,
            129600,
        ),
        "enable_single_use_refresh_tokens": check(
            _bool,
            "enable_single_use_refresh_tokens",
            raw.get("enable_single_use_refresh_tokens", True),
        ),
        "absolute_session_lifetime_in_minutes": check(
            _int_in,
            "absolute_session_lifetime_in_minutes",
            raw.get("absolute_session_lifetime_in_minutes"),
            5,
            TEN_YEARS_MINUTES,
            nullable=True,
        ),
        "reuse_grace_period_in_seconds": check(
            _int_in,
            "reuse_grace_period_in_seconds",
            raw.get("reuse_grace_period_in_seconds", 0),
            0,
            300,
        ),
        "grace_response": check(
            _choice,
            "grace_response",
            raw.get("grace_response", "same_successor"),
            GRACE_RESPONSES,
        ),
        "reuse_detection": check(
            _choice,
            "reuse_detection",
            raw.get("reuse_detection", "revoke_family"),
            REUSE_DETECTIONS,
        ),
        "reuse_revokes_access_tokens": check(
            _bool,
            "reuse_revokes_access_tokens",
            raw.get("reuse_revokes_access_tokens", True),
        ),
        "non_rotating_response": check(
            _choice,
            "non_rotating_response",
            raw.get("non_rotating_response", "same"),
            NON_ROTATING_RESPONSES,
        ),
        "invalid_refresh_token_error": check(
            _choice,
            "invalid_refresh_token_error",
            raw.get("invalid_refresh_token_error", "rfc6749"),
            ERROR_SHAPES,
        ),
        "absolute_lifetime_requires_single_use": check(
            _bool,
            "absolute_lifetime_requires_single_use",
            raw.get("absolute_lifetime_requires_single_use", True),
        ),
    }
    for name in (
        "access_token_ttl_in_seconds",
        "refresh_token_ttl_in_seconds",
        "absolute_session_lifetime_in_seconds",
    ):
        values[name] = check(
            _int_in, name, raw.get(name), 1, second_limit, nullable=True
        )
    return values


def load_integration(document: Any) -> AppIntegration:
    """Read a bare policy or an app-integration object holding one."""
    if not isinstance(document, dict):
        raise PolicyError(
            f"a policy must be a JSON object, got {type(document).__name__}."
        )
    if "token_access_policy" not in document:
        return AppIntegration(
            name="rotcert client",
            confidential=True,
            scopes=("all-apis", "offline_access"),
            redirect_urls=(),
            policy=_policy_from_mapping(document),
        )

    problems = _Problems()
    unknown = sorted(set(document) - INTEGRATION_KEYS)
    if unknown:
        problems.add(_unknown("app-integration field", unknown, INTEGRATION_KEYS))
    inner = document["token_access_policy"]
    if not isinstance(inner, dict):
        problems.add(_fail("token_access_policy", inner, "a JSON object"))
    scopes = document.get("scopes", ["all-apis", "offline_access"])
    urls = document.get("redirect_urls", [])
    for field, value in (("scopes", scopes), ("redirect_urls", urls)):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.add(_fail(field, value, "a list of strings"))
    name = document.get("name", "rotcert client")
    if not isinstance(name, str):
        problems.add(_fail("name", name, "a string"))
    confidential = problems.check(
        _bool, "confidential", document.get("confidential", False)
    )
    policy = _read_policy(inner, problems) if isinstance(inner, dict) else None

    problems.raise_any()
    assert policy is not None
    return AppIntegration(
        name=name,
        confidential=confidential,
        scopes=tuple(scopes),
        redirect_urls=tuple(urls),
        policy=policy,
    )


def load_policy(document: Any) -> Policy:
    """The policy in a bare policy object or an app-integration object."""
    return load_integration(document).policy


def load_policy_file(path: str | Path) -> AppIntegration:
    """Read a policy file, turning every way it can be wrong into a PolicyError."""
    path = Path(path)
    try:
        # Only a regular file of sane size: /dev/zero or a FIFO would never end.
        if path.exists() and not path.is_file():
            raise PolicyError(f"policy file {str(path)!r} is not a regular file.")
        if path.is_file() and path.stat().st_size > MAX_POLICY_BYTES:
            raise PolicyError(
                f"policy file {str(path)!r} is larger than "
                f"{MAX_POLICY_BYTES // 1024 // 1024} MiB; a policy is a few lines."
            )
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise PolicyError(
            f"cannot read policy file {str(path)!r}: {exc.strerror}."
        ) from None
    except UnicodeDecodeError:
        raise PolicyError(f"policy file {str(path)!r} is not UTF-8 text.") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PolicyError(
            f"policy file {str(path)!r} is not valid JSON: {exc.msg} at line "
            f"{exc.lineno} column {exc.colno}."
        ) from None
    except RecursionError:
        raise PolicyError(
            f"policy file {str(path)!r} is nested too deeply to be a policy."
        ) from None
    except ValueError as exc:
        # json raises a plain ValueError for an integer with too many digits.
        raise PolicyError(
            f"policy file {str(path)!r} is not usable JSON: {exc}."
        ) from None
    try:
        return load_integration(document)
    except PolicyError as exc:
        raise PolicyError(f"{path}: {exc}") from None


def preset_names() -> list[str]:
    """Names of the vendor presets shipped with rotcert."""
    folder = resources.files("mock_server") / "presets"
    return sorted(
        entry.name.removesuffix(".json")
        for entry in folder.iterdir()
        if entry.name.endswith(".json")
    )


def load_preset(name: str) -> AppIntegration:
    """A vendor preset by name, e.g. ``databricks`` or ``okta``."""
    names = preset_names()
    if name not in names:
        raise PolicyError(
            f"unknown preset {name!r}; available presets: {', '.join(names)}."
        )
    folder = resources.files("mock_server") / "presets"
    text = (folder / f"{name}.json").read_text(encoding="utf-8")
    return load_integration(json.loads(text))
