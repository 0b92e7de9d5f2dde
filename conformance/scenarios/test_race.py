"""Atomic rotation: many parallel refreshes with one token, one winner."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from conformance.context import ServerScenario
from conformance.scenarios import ROTATION
from conformance.scenarios.test_rotation import needs_single_use


def _race(s: ServerScenario, token: str, threads: int, round_: int):
    barrier = threading.Barrier(threads)
    replies = [None] * threads

    def refresh(slot: int) -> None:
        form, auth = s.target.client.form_and_auth()
        form.update(grant_type="refresh_token", refresh_token=token)
        try:
            barrier.wait(timeout=10)
        except threading.BrokenBarrierError:
            pass
        replies[slot] = s.http.post_form(
            s.target.endpoints.token, form, auth=auth, step=f"race {round_}.{slot}"
        )

    workers = [threading.Thread(target=refresh, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=s.target.timeout * 3)
    return replies


@pytest.mark.rotcert(
    id="S-RACE-01",
    requirement="STD-RT-33, K24",
    profiles=ROTATION,
    catches=("non_atomic_rotation", "no_rotation", "reuse_accepted"),
)
def test_parallel_refreshes_have_one_winner(server_scenario: ServerScenario):
    """N parallel refreshes with one token: exactly one succeeds (or, inside a
    same-successor grace, all get the same successor); never a 5xx."""
    s = server_scenario
    needs_single_use(s)
    same_successor_grace = s.policy.grace > 0 and s.policy.grace_response == (
        "same_successor"
    )
    new_pair_grace = s.policy.grace > 0 and not same_successor_grace
    threads, rounds = s.race_threads, s.race_rounds
    s.step(f"{rounds} rounds of {threads} parallel refreshes, one fresh family each")
    tally: Counter[str] = Counter()

    for round_ in range(1, rounds + 1):
        family = s.new_family(label=f"round {round_}")
        replies = _race(s, family.refresh_token, threads, round_)
        winners = [r for r in replies if r is not None and s.succeeded(r)]
        # Anything that is neither a token response nor an OAuth error: a 5xx,
        # garbage, silence. Under a race that is a failure in itself.
        invalid = [
            r for r in replies if r is None or not (s.succeeded(r) or s.oauth_error(r))
        ]
        tally.update(
            "no answer" if r is None or r.status is None else str(r.status)
            for r in replies
        )
        if invalid:
            s.fail(
                "STD-RT-12",
                f"round {round_}: {len(invalid)} of {threads} parallel refreshes got "
                "neither tokens nor an OAuth error: "
                + (s.what_happened(invalid[0]) if invalid[0] else "no reply at all"),
            )
        successors = {(r.json or {}).get("refresh_token") for r in winners}
        for issued in successors:
            if issued:
                family.lineage.issued(issued, 1, s.elapsed)
        family.lineage.consumed(family.refresh_token, s.elapsed)
        if not winners:
            s.fail("STD-RT-33", f"round {round_}: no parallel refresh succeeded")
        if family.refresh_token in successors:
            s.fail(
                "STD-RT-33",
                f"round {round_}: a winner got the presented token back instead of "
                "a successor",
            )
        if same_successor_grace and len(successors) > 1:
            s.fail(
                "K24",
                f"round {round_}: {len(successors)} different successors inside a "
                "grace period that declares the same successor",
            )
        if not s.policy.grace and len(winners) > 1:
            s.fail(
                "STD-RT-33",
                f"round {round_}: {len(winners)} of {threads} parallel refreshes "
                "with one token succeeded; rotation must be atomic (one winner), "
                f"{len(successors)} distinct successors were issued",
            )
        if new_pair_grace:
            continue
    s.step(
        "outcomes over all rounds: " + ", ".join(f"{k}x{v}" for k, v in tally.items())
    )
