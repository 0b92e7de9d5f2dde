"""The Redactor: no token or secret reaches a transcript, a report or a summary."""

from __future__ import annotations

import base64
import json
import threading
from urllib.parse import quote_plus, urlencode

import pytest

from conformance.redact import SECRET_FIELDS, Redactor, is_fingerprint
from mock_server.tokens import fingerprint

TOKEN = "rt-Zx81kPq0-vvT3m_6sLwA9bN2cD4eF5gH"
SECRET = "s3cr3t/with+odd&chars=!"


@pytest.mark.parametrize("name", SECRET_FIELDS)
def test_json_field_is_fingerprinted(name):
    """Every secret-named member of a JSON body becomes the value's fingerprint."""
    text = json.dumps({name: TOKEN, "token_type": "Bearer"})

    redacted = Redactor().redact(text)

    assert TOKEN not in redacted
    assert json.loads(redacted) == {name: fingerprint(TOKEN), "token_type": "Bearer"}


@pytest.mark.parametrize("name", SECRET_FIELDS)
def test_form_field_is_fingerprinted(name):
    """Every secret-named form field becomes the decoded value's fingerprint."""
    text = urlencode({"grant_type": "refresh_token", name: SECRET})

    redacted = Redactor().redact(text)

    assert quote_plus(SECRET) not in redacted
    assert f"{name}={fingerprint(SECRET)}" in redacted
    assert "grant_type=refresh_token" in redacted


def test_longer_field_names_are_not_mistaken_for_shorter_ones():
    """refresh_token=... is redacted once, as itself, and token_type survives."""
    text = f"refresh_token={TOKEN}&token_type=Bearer&code_challenge=abcdefghij"

    redacted = Redactor().redact(text)

    assert redacted == (
        f"refresh_token={fingerprint(TOKEN)}&token_type=Bearer"
        "&code_challenge=abcdefghij"
    )


def test_json_value_with_escapes_is_fingerprinted_as_decoded():
    """A JSON-escaped value is fingerprinted by what it decodes to."""
    text = json.dumps({"client_secret": 'a"quoted\\secret'})

    redacted = Redactor().redact(text)

    assert json.loads(redacted)["client_secret"] == fingerprint('a"quoted\\secret')


def test_basic_authorization_header_keeps_its_scheme():
    """Authorization: Basic <creds> shows as "Basic fp:..."; the secret is learned."""
    credential = base64.b64encode(f"client-1:{quote_plus(SECRET)}".encode()).decode()
    redactor = Redactor()

    headers = redactor.redact_headers({"authorization": f"Basic {credential}"})

    assert headers == {"authorization": f"Basic {fingerprint(credential)}"}
    assert SECRET not in redactor.redact(f"client_id=x and then {SECRET}")


def test_bearer_authorization_header_keeps_its_scheme():
    """A Bearer header shows the access token's fingerprint, as everywhere else."""
    headers = Redactor().redact_headers({"Authorization": f"Bearer {TOKEN}"})

    assert headers == {"Authorization": f"Bearer {fingerprint(TOKEN)}"}


def test_authorization_in_free_text_is_redacted():
    """An Authorization header quoted in a message or a dump keeps only its scheme."""
    redactor = Redactor()

    line = redactor.redact(f"sent Authorization: Bearer {TOKEN} to the server")
    dumped = redactor.redact(json.dumps({"Authorization": f"Bearer {TOKEN}"}))

    assert line == f"sent Authorization: Bearer {fingerprint(TOKEN)} to the server"
    assert json.loads(dumped) == {"Authorization": f"Bearer {fingerprint(TOKEN)}"}


def test_registered_secret_is_redacted_in_free_text_headers_and_urls():
    """A registered secret is replaced wherever it occurs, however it is spelled."""
    redactor = Redactor()
    redactor.add(SECRET, "client_secret")
    redactor.add(TOKEN, "refresh_token")

    text = redactor.redact(f"the server said {TOKEN!r} was bad; secret {SECRET}")
    url = redactor.redact(f"https://as.test/cb?state={quote_plus(SECRET)}&x=1")
    header = redactor.redact_headers({"X-Echo": f"prefix-{TOKEN}-suffix"})
    escaped = redactor.redact(json.dumps({"note": SECRET}))

    assert text == (
        f"the server said '{fingerprint(TOKEN)}' was bad; secret {fingerprint(SECRET)}"
    )
    assert url == f"https://as.test/cb?state={fingerprint(SECRET)}&x=1"
    assert header == {"X-Echo": f"prefix-{fingerprint(TOKEN)}-suffix"}
    assert json.loads(escaped) == {"note": fingerprint(SECRET)}


def test_field_values_are_learned_for_later_text():
    """A value first seen in a secret field is redacted in later free text too."""
    redactor = Redactor()
    redactor.redact(json.dumps({"refresh_token": TOKEN}))

    assert redactor.redact(f"presented {TOKEN} again") == (
        f"presented {fingerprint(TOKEN)} again"
    )


def test_short_secrets_are_ignored():
    """Registered values under 8 characters would hit random text, so they are not."""
    redactor = Redactor()
    redactor.add("abc1234")
    redactor.add(None)
    redactor.add("")

    assert redactor.redact("abc1234 stays") == "abc1234 stays"
    assert len(redactor) == 0


def test_longest_secret_wins():
    """A secret containing another is replaced whole, not around the shorter one."""
    redactor = Redactor()
    redactor.add("abcdefgh")
    redactor.add("abcdefgh-and-more")

    redacted = redactor.redact("x abcdefgh-and-more y abcdefgh z")

    assert redacted == (
        f"x {fingerprint('abcdefgh-and-more')} y {fingerprint('abcdefgh')} z"
    )


def test_redaction_is_idempotent():
    """Redacting redacted text changes nothing, so fingerprints stay comparable."""
    redactor = Redactor([TOKEN])
    text = f"refresh_token={TOKEN}&x=1 " + json.dumps({"access_token": TOKEN})

    once = redactor.redact(text)

    assert redactor.redact(once) == once
    assert is_fingerprint(fingerprint(TOKEN))


def test_redact_json_fingerprints_secret_members():
    """Structured data (a target description) loses secrets at any depth."""
    redactor = Redactor()
    target = {
        "client_id": "c1",
        "client_secret": SECRET,
        "clients": [{"password": "hunter2hunter2", "note": f"uses {SECRET}"}],
        "timeout": 3,
    }

    redacted = redactor.redact_json(target)

    assert redacted == {
        "client_id": "c1",
        "client_secret": fingerprint(SECRET),
        "clients": [
            {
                "password": fingerprint("hunter2hunter2"),
                "note": f"uses {fingerprint(SECRET)}",
            }
        ],
        "timeout": 3,
    }


def test_redact_json_redacts_member_names_and_numeric_tokens():
    """A decoded server answer loses a registered secret used as a member name,
    and a token sent as a number or inside a list under a secret name."""
    redactor = Redactor([TOKEN])
    answer = {
        TOKEN: "named after the token",
        "refresh_token": 987654321987654,
        "token": [f"list-held-{TOKEN}", 12345678901],
        "expires_in": 3600,
        "active": True,
    }

    redacted = json.dumps(redactor.redact_json(answer))

    for secret in (TOKEN, "987654321987654", "12345678901"):
        assert secret not in redacted
    assert json.loads(redacted)["expires_in"] == 3600
    assert json.loads(redacted)["active"] is True


def test_concurrent_add_and_redact():
    """Threads adding and redacting at once lose no secret and raise nothing."""
    redactor = Redactor()
    secrets = [f"secret-value-{n:04d}" for n in range(200)]
    failures: list[str] = []

    def work(chunk: list[str]) -> None:
        for secret in chunk:
            redactor.add(secret)
            if secret in redactor.redact(f"a {secret} b"):
                failures.append(secret)

    threads = [threading.Thread(target=work, args=(secrets[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert not any(s in redactor.redact(" ".join(secrets)) for s in secrets)
