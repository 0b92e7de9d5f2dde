"""Moving time for the scenarios that need it.

An in-process mock is moved by freezegun, an out-of-process rotcert mock by its
admin clock, and any other server only by really waiting, within the budget the
user allows. A scenario that would need more is skipped with the reason; it is
never passed without being checked.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Protocol

import requests
from freezegun import freeze_time

from .http import HttpClient
from .redact import Redactor

__all__ = ["TimeControl", "FrozenTime", "AdminClock", "RealWait", "human"]


def human(seconds: float) -> str:
    """Durations as people read them in reports: 90 s, 24 min, 30 d."""
    seconds = float(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    if abs(seconds) >= 3600:
        return f"{seconds / 3600:.2f} h"
    return f"{seconds:g} s"


class TimeControl(Protocol):
    name: str

    def begin(self) -> None: ...

    def end(self) -> None: ...

    def cannot_advance(self, seconds: float) -> str | None:
        """Why this much time cannot pass in this scenario, or None if it can."""

    def advance(self, seconds: float) -> None: ...


class FrozenTime:
    """freezegun for a mock running in this process."""

    name = "freeze"

    def __init__(self) -> None:
        self._freezer = None
        self._frozen = None

    def begin(self) -> None:
        start = dt.datetime.now(dt.timezone.utc)
        # The test runner and reporters keep real time: durations stay true.
        self._freezer = freeze_time(
            start, tick=False, ignore=["_pytest", "pytest_html", "xdist", "execnet"]
        )
        self._frozen = self._freezer.start()

    def end(self) -> None:
        if self._freezer is not None:
            self._freezer.stop()
            self._freezer = self._frozen = None

    def cannot_advance(self, seconds: float) -> str | None:
        return None

    def advance(self, seconds: float) -> None:
        assert self._frozen is not None, "FrozenTime.advance outside a scenario"
        self._frozen.tick(dt.timedelta(seconds=seconds))


class AdminClock:
    """The admin clock of a rotcert mock in another process."""

    name = "admin"

    def __init__(self, session: requests.Session, admin: str, timeout: float) -> None:
        self._session = session
        self._url = admin.rstrip("/") + "/clock"
        self._timeout = timeout

    def begin(self) -> None:
        pass

    def end(self) -> None:
        pass

    def cannot_advance(self, seconds: float) -> str | None:
        return None

    def advance(self, seconds: float) -> None:
        # Through HttpClient, for its total deadline and size cap: the admin
        # endpoint may come from the target's own metadata.
        client = HttpClient(Redactor(), timeout=self._timeout, session=self._session)
        reply = client.post_json(
            self._url,
            {"advance_seconds": seconds},
            step="move the admin clock",
            expect_json=False,
        )

        if reply.status is None:
            raise AssertionError(f"could not move the admin clock: {reply.diagnosis}")
        if reply.status != 200:
            raise AssertionError(
                f"the admin clock at {self._url} answered {reply.status}"
            )


class RealWait:
    """Really sleep, but never more than the budget per scenario."""

    name = "wait"

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self._spent = 0.0

    def begin(self) -> None:
        self._spent = 0.0

    def end(self) -> None:
        pass

    def cannot_advance(self, seconds: float) -> str | None:
        if self._spent + seconds <= self.budget:
            return None
        return (
            f"needs {human(self._spent + seconds)} of real waiting; the wait budget "
            f"is {human(self.budget)} (raise --rotcert-wait-budget, or test a rotcert "
            "mock whose clock can be moved)"
        )

    def advance(self, seconds: float) -> None:
        self._spent += seconds
        time.sleep(max(0.0, seconds))
