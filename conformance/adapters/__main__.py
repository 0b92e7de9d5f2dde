"""Run a registered Python adapter as a command adapter.

    python -m conformance.adapters NAME ACTION

reads the ROTCERT_* variables, runs one action in this process and exits as the
protocol says, so ``--adapter "python -m conformance.adapters authlib"`` drives a
reference adapter through the language-neutral form.
"""

from __future__ import annotations

import json
import sys
import traceback

from . import AdapterEnv, AdapterError, python_class
from .protocol import ACTIONS, outcome_of


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[1] not in ACTIONS:
        print(
            "usage: python -m conformance.adapters NAME {" + ",".join(ACTIONS) + "}",
            file=sys.stderr,
        )
        return 2
    name, action = argv
    try:
        env = AdapterEnv.from_environ()
        adapter = python_class(name)(env)
        stdin = json.loads(sys.stdin.read()) if action == "seed" else None
    except (AdapterError, ValueError) as exc:
        print(json.dumps({"error": str(exc)}))
        return 2
    error: BaseException | None = None
    value = None
    try:
        value = adapter.perform(action, stdin)
    except Exception as exc:  # reported through the exit code and stdout
        error = exc
        traceback.print_exc()
    code, output = outcome_of(error, value)
    print(json.dumps(output, default=str))
    return code


if __name__ == "__main__":
    sys.exit(main())
