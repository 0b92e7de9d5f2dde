"""The policy loader: Databricks' token_access_policy plus rotcert's extensions."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mock_server import MockServer
from mock_server.policy import (
    DATABRICKS_EXAMPLE,
    ERROR_SHAPES,
    GRACE_RESPONSES,
    INTEGRATION_KEYS,
    NON_ROTATING_RESPONSES,
    REUSE_DETECTIONS,
    TEN_YEARS_MINUTES,
    AppIntegration,
    Policy,
    PolicyError,
    load_integration,
    load_policy,
    load_policy_file,
)

POLICY_FIELDS = sorted(f for f in Policy.__dataclass_fields__)
TEN_YEARS_SECONDS = TEN_YEARS_MINUTES * 60


def nested_lists(depth: int) -> list[Any]:
    """A list nested ``depth`` deep, built without recursion."""
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def write(tmp_path: Path, content: str | bytes, name: str = "policy.json") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


# ----------------------------------------------------- the Databricks example


def test_databricks_example_loads_unchanged():
    """DESIGN policy: the Databricks documentation example loads as written."""
    before = copy.deepcopy(DATABRICKS_EXAMPLE)

    integration = load_integration(DATABRICKS_EXAMPLE)

    assert DATABRICKS_EXAMPLE == before
    assert integration.name == "Example Tableau Server"
    assert integration.confidential is True
    assert integration.scopes == ("all-apis", "offline_access")
    assert integration.redirect_urls == (
        "https://example.online.tableau.com/auth/add_oauth_token",
    )
    policy = integration.policy
    assert policy.access_token_ttl_in_minutes == 60
    assert policy.refresh_token_ttl_in_minutes == 1440
    assert policy.enable_single_use_refresh_tokens is True
    assert policy.absolute_session_lifetime_in_minutes == 43200
    assert (policy.access_ttl, policy.refresh_ttl) == (3600, 86400)
    assert policy.absolute_lifetime == 43200 * 60


def test_databricks_example_keeps_every_extension_at_its_default():
    """DESIGN policy: with no extension set the server behaves like Databricks."""
    policy = load_policy(DATABRICKS_EXAMPLE)

    assert policy == Policy(absolute_session_lifetime_in_minutes=43200)
    assert policy.grace == 0
    assert policy.reuse_detection == "revoke_family"
    assert policy.invalid_refresh_token_error == "rfc6749"


def test_mock_server_uses_databricks_example_by_default():
    """DESIGN policy: the Databricks example is the mock server's default policy."""
    server = MockServer()

    assert server.integration == load_integration(DATABRICKS_EXAMPLE)


def test_empty_policy_is_databricks_with_single_use_on():
    """DESIGN policy: every field is optional; {} gives the dataclass defaults."""
    policy = load_policy({})

    assert policy == Policy()
    assert policy.single_use is True
    assert policy.absolute_lifetime is None


# ------------------------------------------------- bare policy versus wrapper


def test_bare_policy_and_wrapper_give_the_same_policy():
    """DESIGN policy: a bare policy or an app-integration wrapper is accepted."""
    bare = DATABRICKS_EXAMPLE["token_access_policy"]

    assert load_policy(bare) == load_policy(DATABRICKS_EXAMPLE)


def test_bare_policy_gets_a_default_integration():
    """DESIGN policy: a bare policy makes a confidential rotcert client."""
    integration = load_integration({"access_token_ttl_in_minutes": 30})

    assert integration.name == "rotcert client"
    assert integration.confidential is True
    assert integration.scopes == ("all-apis", "offline_access")
    assert integration.redirect_urls == ()
    assert integration.policy.access_token_ttl_in_minutes == 30


def test_wrapper_defaults_follow_the_account_api():
    """Databricks account API: confidential defaults to false in a wrapper."""
    integration = load_integration({"token_access_policy": {}})

    assert integration.confidential is False
    assert integration.policy == Policy()


def test_wrapper_accepts_what_the_account_api_returns():
    """Databricks account API: a get response loads as a policy document."""
    document = {
        **DATABRICKS_EXAMPLE,
        "integration_id": "abc",
        "client_id": "def",
        "create_time": "2024-01-01T00:00:00Z",
        "created_by": 1,
        "creator_username": "someone@example.com",
        "user_authorized_scopes": [],
    }

    assert load_policy(document) == load_policy(DATABRICKS_EXAMPLE)


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("token_access_policy", None, "a JSON object"),
        ("token_access_policy", [], "a JSON object"),
        ("token_access_policy", "x", "a JSON object"),
        ("scopes", "all-apis", "a list of strings"),
        ("scopes", ["all-apis", 1], "a list of strings"),
        ("redirect_urls", None, "a list of strings"),
        ("name", 7, "a string"),
        ("confidential", "true", "true or false"),
        ("confidential", 1, "true or false"),
    ],
)
def test_wrapper_field_of_wrong_type_is_refused(field, value, allowed):
    """DESIGN policy: a bad app-integration field is named with value and rule."""
    document = {"token_access_policy": {}, field: value}

    with pytest.raises(PolicyError) as info:
        load_integration(document)

    message = str(info.value)
    assert repr(field) in message
    assert json.dumps(value) in message
    assert allowed in message


def test_unknown_wrapper_field_is_refused_with_the_known_ones():
    """DESIGN policy: an unknown app-integration field is named, known ones listed."""
    with pytest.raises(PolicyError) as info:
        load_integration({"token_access_policy": {}, "colour": "red"})

    message = str(info.value)
    assert "'colour'" in message
    for key in INTEGRATION_KEYS:
        assert key in message


# ------------------------------------------------------------ range edges


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        ({"access_token_ttl_in_minutes": 4}, "access_token_ttl_in_minutes"),
        ({"access_token_ttl_in_minutes": 1441}, "access_token_ttl_in_minutes"),
        (
            {"access_token_ttl_in_minutes": 5, "refresh_token_ttl_in_minutes": 4},
            "refresh_token_ttl_in_minutes",
        ),
        ({"refresh_token_ttl_in_minutes": 129601}, "refresh_token_ttl_in_minutes"),
        ({"refresh_token_ttl_in_minutes": 0}, "refresh_token_ttl_in_minutes"),
        ({"access_token_ttl_in_minutes": -60}, "access_token_ttl_in_minutes"),
        (
            {"absolute_session_lifetime_in_minutes": 4},
            "absolute_session_lifetime_in_minutes",
        ),
        (
            {"absolute_session_lifetime_in_minutes": TEN_YEARS_MINUTES + 1},
            "absolute_session_lifetime_in_minutes",
        ),
        ({"reuse_grace_period_in_seconds": -1}, "reuse_grace_period_in_seconds"),
        ({"reuse_grace_period_in_seconds": 301}, "reuse_grace_period_in_seconds"),
        ({"access_token_ttl_in_seconds": 0}, "access_token_ttl_in_seconds"),
        ({"refresh_token_ttl_in_seconds": 0}, "refresh_token_ttl_in_seconds"),
        (
            {"absolute_session_lifetime_in_seconds": TEN_YEARS_SECONDS + 1},
            "absolute_session_lifetime_in_seconds",
        ),
    ],
    ids=lambda v: json.dumps(v) if isinstance(v, dict) else v,
)
def test_value_outside_its_range_is_refused(policy, field):
    """Databricks ranges (DESIGN policy table): values past an edge are refused."""
    with pytest.raises(PolicyError) as info:
        load_policy(policy)

    message = str(info.value)
    assert repr(field) in message
    assert f" is {policy[field]};" in message
    assert "allowed:" in message


@pytest.mark.parametrize(
    "policy",
    [
        {"access_token_ttl_in_minutes": 5, "refresh_token_ttl_in_minutes": 5},
        {"access_token_ttl_in_minutes": 1440, "refresh_token_ttl_in_minutes": 1440},
        {"access_token_ttl_in_minutes": 5, "refresh_token_ttl_in_minutes": 129600},
        {"absolute_session_lifetime_in_minutes": 5},
        {"absolute_session_lifetime_in_minutes": TEN_YEARS_MINUTES},
        {"absolute_session_lifetime_in_minutes": None},
        {"reuse_grace_period_in_seconds": 0},
        {"reuse_grace_period_in_seconds": 300},
        {"access_token_ttl_in_seconds": 1, "refresh_token_ttl_in_seconds": 1},
        {"refresh_token_ttl_in_seconds": TEN_YEARS_SECONDS},
        {"absolute_session_lifetime_in_seconds": TEN_YEARS_SECONDS},
    ],
    ids=json.dumps,
)
def test_value_on_an_edge_is_accepted(policy):
    """Databricks ranges (DESIGN policy table): the edges themselves are allowed."""
    loaded = load_policy(policy)

    for field, value in policy.items():
        assert getattr(loaded, field) == value


def test_access_ttl_below_5_minutes_is_refused_with_the_range():
    """Databricks ranges (DESIGN policy table): access TTL below 5 min is refused."""
    with pytest.raises(PolicyError) as info:
        load_policy({"access_token_ttl_in_minutes": 4})

    assert str(info.value) == (
        "policy field 'access_token_ttl_in_minutes' is 4; "
        "allowed: an integer from 5 to 1440."
    )


def test_refresh_ttl_shorter_than_access_ttl_is_refused():
    """Databricks ranges (DESIGN policy table): refresh TTL must be >= access TTL."""
    with pytest.raises(PolicyError) as info:
        load_policy(
            {"access_token_ttl_in_minutes": 60, "refresh_token_ttl_in_minutes": 59}
        )

    message = str(info.value)
    assert "'refresh_token_ttl_in_minutes' is 59" in message
    assert "at least access_token_ttl_in_minutes (60)" in message


def test_refresh_seconds_shorter_than_access_ttl_is_refused():
    """DESIGN policy: the seconds overrides keep refresh TTL >= access TTL."""
    with pytest.raises(PolicyError) as info:
        load_policy(
            {"access_token_ttl_in_seconds": 10, "refresh_token_ttl_in_seconds": 9}
        )

    message = str(info.value)
    assert "'refresh_token_ttl_in_seconds' is 9" in message
    assert "at least the access token TTL (10 s)" in message


# ------------------------------------------------------------- wrong types

INT_FIELDS = [
    "access_token_ttl_in_minutes",
    "refresh_token_ttl_in_minutes",
    "reuse_grace_period_in_seconds",
]
NULLABLE_INT_FIELDS = [
    "absolute_session_lifetime_in_minutes",
    "access_token_ttl_in_seconds",
    "refresh_token_ttl_in_seconds",
    "absolute_session_lifetime_in_seconds",
]
BOOL_FIELDS = [
    "enable_single_use_refresh_tokens",
    "reuse_revokes_access_tokens",
    "absolute_lifetime_requires_single_use",
]
CHOICE_FIELDS = {
    "grace_response": GRACE_RESPONSES,
    "reuse_detection": REUSE_DETECTIONS,
    "non_rotating_response": NON_ROTATING_RESPONSES,
    "invalid_refresh_token_error": ERROR_SHAPES,
}
NOT_AN_INT = ["60", 60.0, 60.5, True, False, [60], {"minutes": 60}]


def test_every_policy_field_is_covered_by_a_type_test():
    """DESIGN policy: each Policy field has a type rule pinned below."""
    covered = INT_FIELDS + NULLABLE_INT_FIELDS + BOOL_FIELDS + list(CHOICE_FIELDS)

    assert sorted(covered) == POLICY_FIELDS


@pytest.mark.parametrize("value", [*NOT_AN_INT, None], ids=repr)
@pytest.mark.parametrize("field", INT_FIELDS)
def test_integer_field_refuses_other_types(field, value):
    """DESIGN policy: minute and second fields are JSON integers, never null."""
    with pytest.raises(PolicyError) as info:
        load_policy({field: value})

    message = str(info.value)
    assert repr(field) in message
    assert f" is {json.dumps(value)};" in message
    assert "allowed: an integer from" in message


@pytest.mark.parametrize("value", NOT_AN_INT, ids=repr)
@pytest.mark.parametrize("field", NULLABLE_INT_FIELDS)
def test_nullable_integer_field_refuses_other_types(field, value):
    """DESIGN policy: nullable durations are a JSON integer or null, nothing else."""
    with pytest.raises(PolicyError) as info:
        load_policy({field: value})

    message = str(info.value)
    assert repr(field) in message
    assert f" is {json.dumps(value)};" in message
    assert "allowed: an integer or null from" in message


@pytest.mark.parametrize("value", [1, 0, "true", None, [True]], ids=repr)
@pytest.mark.parametrize("field", BOOL_FIELDS)
def test_boolean_field_refuses_other_types(field, value):
    """DESIGN policy: switches are JSON true or false; 1, "true" and null are not."""
    with pytest.raises(PolicyError) as info:
        load_policy({field: value})

    message = str(info.value)
    assert repr(field) in message
    assert f" is {json.dumps(value)};" in message
    assert "allowed: true or false." in message


@pytest.mark.parametrize(
    "value", ["REVOKE_FAMILY", "", None, 1, ["new_pair"]], ids=repr
)
@pytest.mark.parametrize("field", sorted(CHOICE_FIELDS))
def test_choice_field_refuses_anything_but_its_choices(field, value):
    """DESIGN policy extensions: each choice field lists its allowed values."""
    with pytest.raises(PolicyError) as info:
        load_policy({field: value})

    message = str(info.value)
    assert repr(field) in message
    assert f" is {json.dumps(value)};" in message
    assert "allowed: " + " | ".join(CHOICE_FIELDS[field]) in message


@pytest.mark.parametrize(
    ("field", "choice"),
    [(field, choice) for field, choices in CHOICE_FIELDS.items() for choice in choices],
)
def test_choice_field_accepts_each_of_its_choices(field, choice):
    """DESIGN policy extensions: every documented choice loads."""
    assert getattr(load_policy({field: choice}), field) == choice


def test_unknown_policy_field_is_refused_with_the_known_ones():
    """DESIGN policy: an unknown field is named and every known field listed."""
    with pytest.raises(PolicyError) as info:
        load_policy({"access_token_ttl_in_minutes": 60, "refresh_token_ttl": 60})

    message = str(info.value)
    assert "policy field 'refresh_token_ttl' is not known" in message
    for field in POLICY_FIELDS:
        assert field in message


def test_every_problem_of_a_policy_is_named_in_one_message():
    """DESIGN policy: a policy with several mistakes is refused once, naming each
    field, its value and what is allowed, so it is fixed in one go."""
    document = {
        "colour": "red",
        "scopes": "all-apis",
        "token_access_policy": {
            "access_token_ttl_in_minutes": 2,
            "reuse_detection": "maybe",
            "grace": 30,
        },
    }

    with pytest.raises(PolicyError) as info:
        load_integration(document)

    message = str(info.value)
    assert message.startswith("the policy has 5 problems: (1) ")
    for part in (
        "app-integration field 'colour' is not known",
        "'scopes' is \"all-apis\"; allowed: a list of strings",
        "policy field 'grace' is not known",
        "'access_token_ttl_in_minutes' is 2; allowed: an integer from 5 to 1440",
        "'reuse_detection' is \"maybe\"; allowed: revoke_family | reject_only",
    ):
        assert part in message


def test_thousands_of_problems_make_a_short_message():
    """DESIGN policy: hostile input with many bad fields cannot blow up the
    message; the first few are named and the rest counted."""
    raw = {f"unknown_{n}": 1 for n in range(5000)}
    raw.update({name: "x" for name in INT_FIELDS})

    with pytest.raises(PolicyError) as info:
        load_policy(raw)

    assert len(str(info.value)) < 4000
    assert "(and 4990 more)" in str(info.value)


def test_unknown_field_inside_a_wrapper_is_refused():
    """DESIGN policy: the wrapper's token_access_policy is checked like a bare one."""
    with pytest.raises(PolicyError, match="'grace' is not known"):
        load_policy({"token_access_policy": {"grace": 30}})


def test_long_unknown_field_name_is_cut_short_in_the_message():
    """DESIGN policy: hostile input cannot blow up the error message."""
    with pytest.raises(PolicyError) as info:
        load_policy({"x" * 100_000: 1})

    assert len(str(info.value)) < 2000


def test_deeply_nested_value_is_refused_without_recursion_error():
    """DESIGN policy: bad input is a PolicyError, never a traceback."""
    with pytest.raises(PolicyError) as info:
        load_policy({"access_token_ttl_in_minutes": nested_lists(100_000)})

    assert "'access_token_ttl_in_minutes' is <list>;" in str(info.value)


def test_integer_too_long_to_print_is_refused_without_value_error():
    """DESIGN policy: bad input is a PolicyError, never a traceback."""
    with pytest.raises(PolicyError) as info:
        load_policy({"access_token_ttl_in_minutes": 10**5000})

    assert "'access_token_ttl_in_minutes' is <int>;" in str(info.value)


# ------------------------------------------------------------ hostile files


def test_policy_file_loads_the_databricks_example(tmp_path):
    """DESIGN policy: a file holding the Databricks example loads unchanged."""
    path = write(tmp_path, json.dumps(DATABRICKS_EXAMPLE, indent=2))

    assert load_policy_file(path) == load_integration(DATABRICKS_EXAMPLE)
    assert load_policy_file(str(path)) == load_integration(DATABRICKS_EXAMPLE)


def test_missing_policy_file_is_refused(tmp_path):
    """DESIGN policy: a missing file is a PolicyError naming the path."""
    path = tmp_path / "absent.json"

    with pytest.raises(PolicyError) as info:
        load_policy_file(path)

    assert str(path) in str(info.value)
    assert "No such file or directory" in str(info.value)


def test_directory_as_policy_file_is_refused(tmp_path):
    """DESIGN policy: a directory is a PolicyError, not an IsADirectoryError."""
    with pytest.raises(PolicyError) as info:
        load_policy_file(tmp_path)

    assert f"policy file {str(tmp_path)!r} is not a regular file" in str(info.value)


def test_fifo_as_policy_file_is_refused_without_blocking(tmp_path):
    """DESIGN policy: a FIFO (or /dev/zero) is refused, never read forever."""
    fifo = tmp_path / "policy.json"
    os.mkfifo(fifo)

    with pytest.raises(PolicyError, match="is not a regular file"):
        load_policy_file(fifo)


def test_non_utf8_policy_file_is_refused(tmp_path):
    """DESIGN policy: bytes that are not UTF-8 give a PolicyError."""
    path = write(tmp_path, b'{"name": "caf\xe9", "token_access_policy": {}}')

    with pytest.raises(PolicyError, match="is not UTF-8 text"):
        load_policy_file(path)


def test_invalid_json_names_line_and_column(tmp_path):
    """DESIGN policy: a JSON syntax error is reported with its line and column."""
    path = write(tmp_path, '{\n  "access_token_ttl_in_minutes": 60,\n  oops\n}\n')

    with pytest.raises(PolicyError) as info:
        load_policy_file(path)

    message = str(info.value)
    assert "is not valid JSON" in message
    assert "line 3 column 3" in message


@pytest.mark.parametrize(
    ("text", "kind"),
    [("[]", "list"), ("[{}]", "list"), ("42", "int"), ("4.2", "float")]
    + [('"policy"', "str"), ("null", "NoneType"), ("true", "bool")],
)
def test_json_that_is_not_an_object_is_refused(tmp_path, text, kind):
    """DESIGN policy: a policy document must be a JSON object."""
    path = write(tmp_path, text)

    with pytest.raises(PolicyError) as info:
        load_policy_file(path)

    assert f"a policy must be a JSON object, got {kind}." in str(info.value)


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000 + "]" * 100_000, '{"a":' * 100_000 + "1" + "}" * 100_000],
    ids=["lists", "objects"],
)
def test_huge_nesting_is_a_policy_error(tmp_path, text):
    """DESIGN policy: 100000 nested lists give a PolicyError, not a RecursionError."""
    path = write(tmp_path, text)

    with pytest.raises(PolicyError, match="nested too deeply"):
        load_policy_file(path)


def test_integer_with_too_many_digits_in_a_file_is_a_policy_error(tmp_path):
    """DESIGN policy: json's digit limit surfaces as a PolicyError."""
    path = write(tmp_path, '{"access_token_ttl_in_minutes": ' + "9" * 5000 + "}")

    with pytest.raises(PolicyError, match="is not usable JSON"):
        load_policy_file(path)


def test_five_megabyte_value_is_refused_with_a_short_message(tmp_path):
    """DESIGN policy: a 5 MB field value is refused and not echoed in full."""
    huge = "x" * (5 * 1024 * 1024)

    with pytest.raises(PolicyError) as info:
        load_policy({"grace_response": huge})

    message = str(info.value)
    assert "'grace_response'" in message
    assert "allowed: same_successor | new_pair" in message
    assert len(message) < 1000


def test_policy_file_over_a_megabyte_is_refused(tmp_path):
    """DESIGN policy: a file over 1 MiB is refused before it is read."""
    document = {**DATABRICKS_EXAMPLE, "notes": "n" * (5 * 1024 * 1024)}
    path = write(tmp_path, json.dumps(document))

    with pytest.raises(PolicyError, match="larger than 1 MiB"):
        load_policy_file(path)


def test_large_policy_file_under_the_cap_loads(tmp_path):
    """DESIGN policy: a long but valid app-integration file still loads."""
    document = {**DATABRICKS_EXAMPLE, "notes": "n" * (512 * 1024)}
    path = write(tmp_path, json.dumps(document))

    assert load_policy_file(path).policy == load_policy(DATABRICKS_EXAMPLE)


def test_error_inside_a_file_names_the_file(tmp_path):
    """DESIGN policy: a bad value in a file is reported with the file's path."""
    path = write(
        tmp_path, '{"token_access_policy": {"access_token_ttl_in_minutes": 1441}}'
    )

    with pytest.raises(PolicyError) as info:
        load_policy_file(path)

    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert (
        "'access_token_ttl_in_minutes' is 1441; allowed: an integer from 5 to 1440"
        in (message)
    )


# ------------------------------------------------- semantics of the fields


def test_seconds_overrides_take_precedence_over_minutes():
    """DESIGN policy: *_in_seconds test overrides win over the minute fields."""
    policy = load_policy(
        {
            "access_token_ttl_in_minutes": 60,
            "refresh_token_ttl_in_minutes": 1440,
            "absolute_session_lifetime_in_minutes": 43200,
            "access_token_ttl_in_seconds": 2,
            "refresh_token_ttl_in_seconds": 5,
            "absolute_session_lifetime_in_seconds": 11,
        }
    )

    assert (policy.access_ttl, policy.refresh_ttl, policy.absolute_lifetime) == (
        2,
        5,
        11,
    )


def test_minutes_apply_when_no_seconds_override_is_set():
    """DESIGN policy: without overrides durations are the minute fields x 60."""
    policy = load_policy(
        {
            "access_token_ttl_in_minutes": 7,
            "refresh_token_ttl_in_minutes": 11,
            "absolute_session_lifetime_in_minutes": 13,
        }
    )

    assert (policy.access_ttl, policy.refresh_ttl, policy.absolute_lifetime) == (
        420,
        660,
        780,
    )


def test_absolute_seconds_apply_without_absolute_minutes():
    """DESIGN policy: an absolute lifetime may be given in seconds alone."""
    policy = load_policy({"absolute_session_lifetime_in_seconds": 90})

    assert policy.absolute_lifetime == 90


@pytest.mark.parametrize(
    "lifetime",
    [
        {"absolute_session_lifetime_in_minutes": 43200},
        {"absolute_session_lifetime_in_seconds": 90},
    ],
    ids=["minutes", "seconds"],
)
def test_absolute_lifetime_ignored_when_single_use_is_off(lifetime):
    """Databricks single-use docs: absolute lifetime only applies with single-use on."""
    policy = load_policy({"enable_single_use_refresh_tokens": False, **lifetime})

    assert policy.absolute_lifetime_requires_single_use is True
    assert policy.absolute_lifetime is None


def test_absolute_lifetime_applies_without_single_use_when_not_required():
    """vendors.md §4: Okta/Auth0/Keycloak cap sessions whether or not they rotate."""
    policy = load_policy(
        {
            "enable_single_use_refresh_tokens": False,
            "absolute_session_lifetime_in_minutes": 600,
            "absolute_lifetime_requires_single_use": False,
        }
    )

    assert policy.absolute_lifetime == 36000


def test_grace_with_single_use_off_is_refused():
    """DESIGN policy: a grace period only applies to consumed (single-use) tokens."""
    with pytest.raises(PolicyError) as info:
        load_policy(
            {
                "enable_single_use_refresh_tokens": False,
                "reuse_grace_period_in_seconds": 30,
            }
        )

    message = str(info.value)
    assert "'reuse_grace_period_in_seconds' is 30" in message
    assert "allowed: 0 when enable_single_use_refresh_tokens is false" in message


def test_zero_grace_with_single_use_off_is_accepted():
    """DESIGN policy: a non-rotating policy with no grace loads."""
    policy = load_policy(
        {"enable_single_use_refresh_tokens": False, "reuse_grace_period_in_seconds": 0}
    )

    assert (policy.single_use, policy.grace) == (False, 0)


ROUND_TRIP_POLICIES = [
    {},
    DATABRICKS_EXAMPLE["token_access_policy"],
    {
        "access_token_ttl_in_minutes": 5,
        "refresh_token_ttl_in_minutes": 129600,
        "enable_single_use_refresh_tokens": True,
        "absolute_session_lifetime_in_minutes": None,
        "access_token_ttl_in_seconds": 2,
        "refresh_token_ttl_in_seconds": 4,
        "absolute_session_lifetime_in_seconds": 30,
        "reuse_grace_period_in_seconds": 300,
        "grace_response": "new_pair",
        "reuse_detection": "reject_only",
        "reuse_revokes_access_tokens": False,
        "non_rotating_response": "omit",
        "invalid_refresh_token_error": "databricks",
        "absolute_lifetime_requires_single_use": False,
    },
    {"enable_single_use_refresh_tokens": False, "non_rotating_response": "same"},
]


@pytest.mark.parametrize(
    "raw", ROUND_TRIP_POLICIES, ids=["empty", "example", "all", "off"]
)
def test_to_json_round_trips(raw):
    """DESIGN policy: Policy.to_json loads back to the same policy, through JSON."""
    policy = load_policy(raw)

    text = json.dumps(policy.to_json())

    assert load_policy(json.loads(text)) == policy


def test_to_json_keeps_databricks_fields_and_drops_default_extensions():
    """DESIGN policy: with no extension set, to_json is Databricks' own JSON."""
    exported = load_policy(DATABRICKS_EXAMPLE).to_json()

    assert exported == DATABRICKS_EXAMPLE["token_access_policy"]


def test_to_json_keeps_extensions_that_differ_from_defaults():
    """DESIGN policy: a non-default extension survives export."""
    exported = load_policy({"reuse_grace_period_in_seconds": 30}).to_json()

    assert exported["reuse_grace_period_in_seconds"] == 30
    assert "grace_response" not in exported


# ---------------------------------------------------------------- property

FIELD_NAMES = st.sampled_from(POLICY_FIELDS + sorted(INTEGRATION_KEYS)) | st.text(
    max_size=12
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-1, max_value=130_000)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(
        GRACE_RESPONSES + REUSE_DETECTIONS + NON_ROTATING_RESPONSES + ERROR_SHAPES
    )
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(FIELD_NAMES, inner, max_size=4)
    ),
    max_leaves=12,
)


def plausible(field: str) -> st.SearchStrategy[Any]:
    """Values of the right kind for a field, often in range, so some policies load."""
    if field in CHOICE_FIELDS:
        return st.sampled_from(CHOICE_FIELDS[field])
    if field in BOOL_FIELDS:
        return st.booleans()
    return st.none() | st.integers(min_value=-1, max_value=2000)


# Arbitrary JSON objects, plus objects of known fields that often load.
POLICY_OBJECTS = st.dictionaries(
    FIELD_NAMES, JSON_VALUES, max_size=6
) | st.fixed_dictionaries({}, optional={f: plausible(f) for f in POLICY_FIELDS})
DOCUMENTS = POLICY_OBJECTS | st.builds(
    lambda inner, outer: {**outer, "token_access_policy": inner},
    POLICY_OBJECTS,
    POLICY_OBJECTS,
)


@settings(
    max_examples=400,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(DOCUMENTS)
def test_any_json_object_loads_or_raises_policy_error(document):
    """DESIGN policy: bad input is a PolicyError, never any other exception."""
    try:
        integration = load_integration(document)
    except PolicyError as exc:
        assert str(exc).endswith(".")
    else:
        assert isinstance(integration, AppIntegration)
        assert load_policy(integration.policy.to_json()) == integration.policy
