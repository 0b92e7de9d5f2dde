"""The adapter protocol: the command runner, the Python runner, the registry, and
the reference adapters' login and command forms against the mock server."""

from __future__ import annotations

import json
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from conformance.adapters import (
    ActionFailed,
    AdapterEnv,
    AdapterError,
    CommandAdapter,
    InProcessAdapter,
    PythonAdapter,
    ReauthRequired,
    names,
    python_class,
    resolve,
    run_together,
)
from conformance.adapters.glue import TokenFile
from conformance.adapters.protocol import ENV
from conformance.client_scenarios.harness import MockHarness
from mock_server import load_integration
from mock_server.policy import DATABRICKS_EXAMPLE

EXAMPLE = Path(__file__).parent.parent / "fixtures" / "adapters" / "example_adapter.py"


def _env(tmp_path: Path, **changes) -> AdapterEnv:
    values = dict(
        issuer="http://127.0.0.1:1",
        token_endpoint="http://127.0.0.1:1/token",
        authorization_endpoint="http://127.0.0.1:1/authorize",
        resource="http://127.0.0.1:1/resource",
        client_id="client-1",
        client_secret="s3cret-value",
        client_auth_method="client_secret_basic",
        redirect_uri="http://127.0.0.1:1/callback",
        scope="all-apis offline_access",
        state_dir=tmp_path / "state",
    )
    values.update(changes)
    return AdapterEnv(**values)


def _script(tmp_path: Path, body: str) -> CommandAdapter:
    path = tmp_path / "adapter.py"
    path.write_text(textwrap.dedent(body))
    return CommandAdapter([sys.executable, str(path)])


# ------------------------------------------------------------------ commands


def test_command_adapter_gets_every_variable_the_action_and_stdin(tmp_path):
    """Protocol: the command gets the ROTCERT_* variables, the action as its last
    argument and the token response on stdin; its JSON object is the output."""
    adapter = _script(
        tmp_path,
        """
        import json, os, sys
        env = {k: v for k, v in os.environ.items() if k.startswith("ROTCERT_")}
        print(json.dumps({"argv": sys.argv[1:], "env": env,
                          "stdin": json.loads(sys.stdin.read())}))
        """,
    )
    env = _env(tmp_path).with_concurrency(4)
    result = adapter.run("seed", env, {"access_token": "a"})

    assert result.ok and result.code == 0
    assert result.output["argv"] == ["seed"]
    assert result.output["stdin"] == {"access_token": "a"}
    seen = result.output["env"]
    assert set(ENV.values()) <= set(seen)
    assert seen["ROTCERT_ACTION"] == "seed"
    assert seen["ROTCERT_CONCURRENCY"] == "4"
    assert seen["ROTCERT_STATE_DIR"] == str(env.state_dir)
    assert AdapterEnv.from_environ(seen) == env


def test_exit_3_means_reauthentication(tmp_path):
    """Protocol: exit code 3 is "re-authentication needed", with the adapter's
    message shown."""
    adapter = _script(
        tmp_path,
        """
        import json, sys
        print(json.dumps({"reauth": "refresh refused: invalid_grant"}))
        sys.exit(3)
        """,
    )
    result = adapter.run("call", _env(tmp_path))

    assert result.reauth and not result.ok
    assert result.describe() == (
        "exit 3 (re-authentication needed): refresh refused: invalid_grant"
    )


def test_output_that_is_not_one_json_object_is_a_protocol_problem(tmp_path):
    """Protocol: stdout must be one JSON object; anything else is reported as an
    adapter problem even with exit 0."""
    adapter = _script(tmp_path, "print('all good')\n")
    result = adapter.run("call", _env(tmp_path))

    assert result.code == 0 and not result.ok
    assert "not one JSON object" in (result.problem or "")


# Adapter output the protocol cannot use: the script, and the words its problem
# must use.
UNUSABLE_OUTPUT = {
    "not-utf8": (
        r"""sys.stdout.buffer.write(b'{"a": "\xff\xfe"}')""",
        "printed bytes that are not UTF-8 text (at byte 7)",
    ),
    "nested": (
        "print('[' * 100_000 + ']' * 100_000)",
        "printed JSON nested too deeply to read",
    ),
    "endless": (
        "while True:\n    sys.stdout.write('x' * 65536)",
        "call printed more than 1048576 bytes",
    ),
}


@pytest.mark.parametrize("case", sorted(UNUSABLE_OUTPUT))
def test_unusable_output_is_a_protocol_problem(tmp_path, case):
    """Protocol and issue 3 (Reaching a server): an adapter that prints bytes
    that are not UTF-8, JSON nested 100000 deep or output without end gets an
    adapter problem that says so; no exception, hang or unbounded read."""
    script, said = UNUSABLE_OUTPUT[case]
    adapter = _script(tmp_path, "import sys\n" + script + "\n")
    started = time.monotonic()
    result = adapter.run("call", _env(tmp_path), timeout=20)

    assert time.monotonic() - started < 10
    assert not result.ok and not result.reauth
    assert said in (result.problem or "")
    assert len(result.stdout) < 70 * 1024


def test_a_hung_action_is_killed_and_reported(tmp_path):
    """Protocol: an action that outlives the timeout is ended and reported as
    hung, not waited for."""
    adapter = _script(tmp_path, "import time\ntime.sleep(30)\n")
    started = time.monotonic()
    result = adapter.run("call", _env(tmp_path), timeout=0.5)

    assert time.monotonic() - started < 10
    assert result.code is None
    assert "did not finish within 0.5 s" in (result.problem or "")


def test_actions_run_together_overlap(tmp_path):
    """Protocol: run_together starts the processes at the same time."""
    adapter = _script(
        tmp_path,
        "import json, time\ntime.sleep(0.6)\nprint(json.dumps({}))\n",
    )
    started = time.monotonic()
    results = run_together(adapter, "call", [_env(tmp_path)] * 3)

    assert [r.code for r in results] == [0, 0, 0]
    assert time.monotonic() - started < 1.7


def test_from_environ_names_the_missing_variables():
    """Protocol: a Python command adapter started by hand is told what is missing."""
    with pytest.raises(AdapterError, match="ROTCERT_TOKEN_ENDPOINT"):
        AdapterEnv.from_environ({"ROTCERT_CLIENT_ID": "x"})


def test_readme_and_protocol_page_list_every_variable_and_the_output_contract():
    """README (Certify a client) and docs/adapter-protocol.md: every variable an
    adapter is given, the output members rotcert reads, and exit 3 are written
    down where a vendor looks first."""
    root = Path(__file__).parent.parent
    readme = (root / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Certify a client") :]
    section = section[: section.index("\n## ")]
    page = (root / "docs" / "adapter-protocol.md").read_text(encoding="utf-8")

    for text in (section, page):
        for variable in ENV.values():
            assert f"`{variable}" in text, variable
        for member in ("message", "reauth", "error"):
            assert f"`{member}`" in text, member
        assert "exit 3" in text
    assert "--client-auth basic|post" in section


# -------------------------------------------------------------------- python


class _Scripted(PythonAdapter):
    name = "scripted"
    behaviour = "ok"
    instances = 0

    def __init__(self, env):
        super().__init__(env)
        type(self).instances += 1

    def call(self):
        if self.behaviour == "reauth":
            raise ReauthRequired("log in again", {"responses": ["x"]})
        if self.behaviour == "fail":
            raise ActionFailed("the resource answered 401")
        if self.behaviour == "hang":
            threading.Event().wait(5)
        return {"responses": [200]}


@pytest.mark.parametrize(
    ("behaviour", "code", "said"),
    [
        ("ok", 0, None),
        ("reauth", 3, "log in again"),
        ("fail", 1, "ActionFailed: the resource answered 401"),
    ],
)
def test_python_adapter_outcomes_become_exit_codes(tmp_path, behaviour, code, said):
    """Protocol (Python form): a return is exit 0, ReauthRequired exit 3, any other
    exception an error with its message."""
    cls = type("Adapter", (_Scripted,), {"behaviour": behaviour})
    result = InProcessAdapter(cls, "scripted").run("call", _env(tmp_path))

    assert result.code == code
    assert result.message == said


def test_python_adapter_gets_a_new_instance_per_action(tmp_path):
    """Protocol (Python form): every action runs on a new instance, as every
    command action runs in a new process."""
    cls = type("Adapter", (_Scripted,), {"instances": 0})
    runner = InProcessAdapter(cls, "scripted")
    runner.run("call", _env(tmp_path))
    runner.run("call", _env(tmp_path))

    assert cls.instances == 2


def test_python_adapter_that_hangs_is_reported(tmp_path):
    """Protocol (Python form): a hung action is reported after the timeout."""
    cls = type("Adapter", (_Scripted,), {"behaviour": "hang"})
    result = InProcessAdapter(cls, "scripted").run("call", _env(tmp_path), timeout=0.3)

    assert result.code is None and "did not finish" in (result.problem or "")


def test_unsupported_action_is_an_error_not_a_crash(tmp_path):
    """Protocol (Python form): an action the adapter lacks is an error result."""
    result = InProcessAdapter(_Scripted, "scripted").run("login", _env(tmp_path))

    assert result.code == 1
    assert "login is not supported" in (result.message or "")


# ------------------------------------------------------------------ registry


def test_every_registered_name_resolves_to_an_in_process_adapter():
    """Registry: each name (libraries, naive, reference, flawed) loads."""
    for name in names():
        adapter = resolve(name)
        assert adapter.in_process and adapter.name == name


def test_resolve_takes_a_python_spec_and_a_command():
    """Registry: py:module:Class loads a vendor class; anything else is a command."""
    python = resolve("py:conformance.adapters.reference:ReferenceClient")
    command = resolve(f"{sys.executable} -m conformance.adapters authlib")

    assert python.in_process and python.name == "reference"
    assert not command.in_process


def test_resolve_refuses_what_it_cannot_run():
    """Registry: an unknown name that is no command is refused with the names."""
    with pytest.raises(AdapterError, match="neither a registered adapter"):
        resolve("no-such-client-anywhere")
    with pytest.raises(AdapterError, match="py:module:Class"):
        resolve("py:nothing")
    with pytest.raises(AdapterError, match="no adapter is registered"):
        python_class("nope")


def test_clear_if_never_deletes_a_newer_token(tmp_path):
    """STD-RT-C13 glue: a refused refresh forgets the stored token only if it is
    still the refused one (a newer one from another process survives)."""
    tokens = TokenFile(tmp_path)
    tokens.save({"refresh_token": "newer"})

    assert tokens.clear_if("older") is False
    assert tokens.load() == {"refresh_token": "newer"}
    assert tokens.clear_if("newer") is True
    assert tokens.load() is None


# ------------------------------------------------------ against the mock


@pytest.fixture(scope="module")
def mock():
    harness = MockHarness.start(load_integration(DATABRICKS_EXAMPLE), "basic")
    yield harness
    harness.stop()


def _grant_events(mock: MockHarness) -> list[str]:
    return [
        e["grant_type"]
        for e in mock.server.store.events()
        if e.get("endpoint") == "token" and e.get("status") == 200
    ]


@pytest.mark.parametrize("name", ["reference", "naive", "requests-oauthlib", "authlib"])
def test_login_runs_the_authorization_code_flow(mock, tmp_path, name):
    """Protocol login: the adapter's real authorization-code flow against /authorize
    yields tokens the next call uses."""
    mock.server.reset()
    adapter = resolve(name)
    env = mock.env(tmp_path / "state", "all-apis offline_access")

    login = adapter.run("login", env)
    call = adapter.run("call", env)

    assert login.ok, login.describe() + login.stderr
    assert call.ok, call.describe() + call.stderr
    assert _grant_events(mock) == ["authorization_code"]


def test_google_auth_has_no_login(mock, tmp_path):
    """Protocol login: google-auth has no authorization-code flow of its own, and
    says so instead of pretending."""
    result = resolve("google-auth").run("login", mock.env(tmp_path, "all-apis"))

    assert result.code == 1 and "not supported" in (result.message or "")


def test_example_command_adapter_logs_in_and_calls(mock, tmp_path):
    """Protocol: the example command adapter in fixtures/ logs in, calls, and
    reports re-authentication once its grant is revoked."""
    mock.server.reset()
    adapter = CommandAdapter([sys.executable, str(EXAMPLE)])
    env = mock.env(tmp_path / "state", "all-apis offline_access")

    assert adapter.run("login", env).ok
    assert adapter.run("call", env.with_concurrency(3)).ok
    stored = json.loads((env.state_dir / "tokens.json").read_text())
    client = mock.server.client(mock.client_id)
    mock.server.authority.revoke(client, stored["refresh_token"])
    (env.state_dir / "tokens.json").write_text(json.dumps({**stored, "expires_at": 0}))

    assert adapter.run("call", env).reauth


def test_reference_adapter_runs_as_a_command(mock, tmp_path):
    """Protocol: python -m conformance.adapters NAME drives a registered Python
    adapter through the command form, same outcomes."""
    mock.server.reset()
    adapter = resolve(f"{sys.executable} -m conformance.adapters reference")
    env = mock.env(tmp_path / "state", "all-apis offline_access")

    assert adapter.run("login", env).ok
    result = adapter.run("call", env)

    assert result.ok and result.output == {"responses": [200]}
