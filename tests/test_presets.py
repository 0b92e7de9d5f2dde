"""Vendor presets: each loads and encodes what reference/vendors.md reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mock_server.policy import (
    DATABRICKS_EXAMPLE,
    AppIntegration,
    PolicyError,
    load_policy,
    load_policy_file,
    load_preset,
    preset_names,
)

PRESETS = [
    "auth0",
    "databricks",
    "django-oauth-toolkit",
    "entra",
    "google",
    "hydra",
    "keycloak",
    "oidc-provider",
    "okta",
]
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "presets"
MINUTE, HOUR, DAY = 60, 3600, 86400

# What vendors.md says, in the policy's own terms (durations in seconds).
EXPECTED: dict[str, dict[str, Any]] = {
    "databricks": {
        "access_ttl": HOUR,
        "refresh_ttl": DAY,
        "single_use": True,
        "absolute_lifetime": 30 * DAY,
        "grace": 0,
        "reuse_detection": "revoke_family",
        "invalid_refresh_token_error": "databricks",
        "absolute_lifetime_requires_single_use": True,
    },
    "okta": {
        "access_ttl": HOUR,
        "refresh_ttl": 7 * DAY,
        "single_use": True,
        "absolute_lifetime": None,
        "grace": 30,
        "grace_response": "new_pair",
        "reuse_detection": "revoke_family",
        "reuse_revokes_access_tokens": True,
        "invalid_refresh_token_error": "rfc6749",
        "absolute_lifetime_requires_single_use": False,
    },
    "auth0": {
        "refresh_ttl": 1_296_000,
        "single_use": True,
        "absolute_lifetime": 2_592_000,
        "grace": 0,
        "grace_response": "new_pair",
        "reuse_detection": "revoke_family",
        "invalid_refresh_token_error": "rfc6749",
        "absolute_lifetime_requires_single_use": False,
    },
    "keycloak": {
        "access_ttl": 300,
        "refresh_ttl": 1800,
        "single_use": True,
        "absolute_lifetime": 36000,
        "grace": 0,
        "reuse_detection": "revoke_family",
        "reuse_revokes_access_tokens": True,
        "non_rotating_response": "new_token_old_valid",
        "invalid_refresh_token_error": "rfc6749",
        "absolute_lifetime_requires_single_use": False,
    },
    "hydra": {
        "access_ttl": HOUR,
        "refresh_ttl": 720 * HOUR,
        "single_use": True,
        "absolute_lifetime": None,
        "grace": 0,
        "grace_response": "new_pair",
        "reuse_detection": "revoke_family",
        "reuse_revokes_access_tokens": True,
        "invalid_refresh_token_error": "rfc6749",
    },
    "oidc-provider": {
        "access_ttl": HOUR,
        "refresh_ttl": 14 * DAY,
        "single_use": True,
        "absolute_lifetime": None,
        "grace": 0,
        "reuse_detection": "revoke_family",
        "reuse_revokes_access_tokens": True,
        "invalid_refresh_token_error": "rfc6749",
    },
    "django-oauth-toolkit": {
        "access_ttl": 36000,
        "single_use": True,
        "absolute_lifetime": None,
        "grace": 0,
        "grace_response": "same_successor",
        "reuse_detection": "reject_only",
        "invalid_refresh_token_error": "rfc6749",
    },
    "google": {
        "access_ttl": 3600,
        "refresh_ttl": 180 * DAY,
        "single_use": False,
        "absolute_lifetime": None,
        "grace": 0,
        "non_rotating_response": "omit",
        "invalid_refresh_token_error": "rfc6749",
    },
    "entra": {
        "refresh_ttl": 90 * DAY,
        "single_use": False,
        "absolute_lifetime": None,
        "grace": 0,
        "non_rotating_response": "new_token_old_valid",
        "invalid_refresh_token_error": "rfc6749",
    },
}


def read_preset(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def test_preset_names_lists_all_nine_vendors():
    """DESIGN policy: presets exist for the nine vendors of reference/vendors.md."""
    assert preset_names() == PRESETS


def test_every_preset_has_expectations_here():
    """vendors.md §4.1: each shipped preset is checked against the vendor facts."""
    assert sorted(EXPECTED) == preset_names()


@pytest.mark.parametrize("name", PRESETS)
def test_preset_loads(name):
    """DESIGN policy: every vendor preset loads within the Databricks ranges."""
    integration = load_preset(name)

    assert isinstance(integration, AppIntegration)
    assert integration.scopes
    assert integration.redirect_urls


@pytest.mark.parametrize("name", PRESETS)
def test_preset_file_under_fixtures_loads_the_same(name):
    """DESIGN layout: presets are policy files under fixtures/ as well."""
    assert load_policy_file(FIXTURES / f"{name}.json") == load_preset(name)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_is_an_app_integration_with_sources_and_notes(name):
    """vendors.md: a preset says where its facts come from and where it falls short."""
    document = read_preset(name)

    assert isinstance(document["token_access_policy"], dict)
    assert isinstance(document["name"], str) and document["name"]
    assert isinstance(document["description"], str) and document["description"]
    assert isinstance(document["notes"], str) and document["notes"]
    assert document["sources"]
    assert all(isinstance(s, str) and s for s in document["sources"])


@pytest.mark.parametrize("name", PRESETS)
def test_preset_policy_round_trips_through_to_json(name):
    """DESIGN policy: a preset's policy exports and loads back unchanged."""
    policy = load_preset(name).policy

    assert load_policy(json.loads(json.dumps(policy.to_json()))) == policy


@pytest.mark.parametrize("name", PRESETS)
def test_preset_matches_vendors_md(name):
    """vendors.md §1 and §4.1: the preset encodes the vendor's documented values."""
    policy = load_preset(name).policy

    actual = {key: getattr(policy, key) for key in EXPECTED[name]}

    assert actual == EXPECTED[name]


def test_databricks_preset_is_the_documentation_example():
    """vendors.md §2.1: the Databricks preset is the docs example with its error."""
    preset = load_preset("databricks").policy
    example = load_policy(DATABRICKS_EXAMPLE)

    assert preset.to_json() == {
        **example.to_json(),
        "invalid_refresh_token_error": "databricks",
    }


def test_okta_grace_is_the_default_leeway():
    """vendors.md §2.2 Okta: leeway defaults to 30 s within 0..60."""
    policy = load_preset("okta").policy

    assert policy.grace == 30
    assert 0 <= policy.grace <= 60


def test_auth0_grace_mints_a_new_pair():
    """vendors.md §2.3 Auth0: inside the reuse interval a new rotating RT is issued."""
    assert load_preset("auth0").policy.grace_response == "new_pair"


def test_django_oauth_toolkit_replays_and_only_rejects():
    """vendors.md §2.7 DOT: grace replays the first result; reuse is only rejected."""
    policy = load_preset("django-oauth-toolkit").policy

    assert policy.reuse_detection == "reject_only"
    assert policy.grace_response == "same_successor"


def test_django_oauth_toolkit_refresh_tokens_practically_never_expire():
    """vendors.md §2.7 DOT: REFRESH_TOKEN_EXPIRE_SECONDS is not checked at refresh."""
    policy = load_preset("django-oauth-toolkit").policy

    assert policy.refresh_ttl >= 10 * 365 * DAY


def test_google_does_not_rotate_and_omits_the_refresh_token():
    """vendors.md §2.12 Google: no rotation; the response omits refresh_token."""
    policy = load_preset("google").policy

    assert policy.single_use is False
    assert policy.non_rotating_response == "omit"


def test_google_idle_lifetime_uses_the_seconds_override():
    """vendors.md §2.12 Google: 6 months idle exceeds 129600 minutes."""
    policy = load_preset("google").policy

    assert policy.refresh_token_ttl_in_seconds is not None
    assert policy.refresh_ttl > 129600 * MINUTE


def test_entra_issues_new_tokens_and_keeps_old_ones():
    """vendors.md §2.10 Entra: a new RT on every use; the old one is not revoked."""
    policy = load_preset("entra").policy

    assert policy.single_use is False
    assert policy.non_rotating_response == "new_token_old_valid"


def test_hydra_refresh_ttl_fits_the_minute_range():
    """vendors.md §2.5 Hydra: ttl.refresh_token 720h is 43200 minutes."""
    policy = load_preset("hydra").policy

    assert policy.refresh_token_ttl_in_minutes == 43200
    assert policy.refresh_token_ttl_in_seconds is None


def test_oidc_provider_main_client_is_public():
    """vendors.md §2.6 oidc-provider: public clients always rotate by default."""
    assert load_preset("oidc-provider").confidential is False


@pytest.mark.parametrize("name", ["okta2", "../databricks", "databricks.json", ""])
def test_unknown_preset_lists_the_available_ones(name):
    """DESIGN policy: an unknown preset name is refused with the names to use."""
    with pytest.raises(PolicyError) as info:
        load_preset(name)

    message = str(info.value)
    assert f"unknown preset {name!r}" in message
    assert "available presets: " + ", ".join(PRESETS) + "." in message
