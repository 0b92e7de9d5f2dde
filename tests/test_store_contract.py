"""The store contract: MemoryStore and SQLiteStore answer every call alike."""

from __future__ import annotations

import contextlib
import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mock_server import MemoryStore, MockServer, SQLiteStore
from mock_server.store import KINDS, Store

# When a property fails, Hypothesis imports libcst to suggest a patch, and libcst's
# import warns (mypy_extensions.TypedDict); under filterwarnings=error that turns the
# failure report into an INTERNALERROR. Import it once, quietly, up front.
with warnings.catch_warnings(), contextlib.suppress(ImportError):
    warnings.simplefilter("ignore", DeprecationWarning)
    import hypothesis.extra._patching  # noqa: F401


def put(store: Store, kind: str, key: str, value: Any, family: str | None = None):
    with store.transaction() as tx:
        tx.put(kind, key, value, family=family)


def get(store: Store, kind: str, key: str) -> Any:
    with store.transaction(write=False) as tx:
        return tx.get(kind, key)


def by_family(store: Store, kind: str, family: str) -> list[Any]:
    with store.transaction(write=False) as tx:
        return tx.by_family(kind, family)


def every(store: Store, kind: str) -> list[Any]:
    """``all()``, which promises no order, sorted for comparison."""
    with store.transaction(write=False) as tx:
        return sorted(tx.all(kind), key=lambda v: json.dumps(v, sort_keys=True))


VALUE = {
    "text": "grüße ✓",
    "int": 3,
    "float": 1893456000.25,
    "bool": True,
    "none": None,
    "list": [1, "a", {"nested": []}],
}


# ------------------------------------------------------------ both stores


def test_get_of_missing_key_is_none(store):
    """Store contract: an unknown key reads as None."""
    assert get(store, "refresh", "nope") is None


@pytest.mark.parametrize("value", [VALUE, ["a", "b"], "text", 2.5, 0])
def test_put_then_get_round_trips_json(store, value):
    """Store contract: any JSON value comes back equal."""
    put(store, "settings", "key", value)

    assert get(store, "settings", "key") == value


def test_put_overwrites_and_kinds_are_separate(store):
    """Store contract: a key is unique per kind; a second put replaces the value."""
    put(store, "refresh", "k", {"v": 1})
    put(store, "access", "k", {"v": 2})
    put(store, "refresh", "k", {"v": 3})

    assert get(store, "refresh", "k") == {"v": 3}
    assert get(store, "access", "k") == {"v": 2}


def test_values_are_copies(store):
    """Store contract: changing a value after put or after get changes nothing."""
    value = {"list": [1]}
    put(store, "family", "f", value)
    value["list"].append(2)
    got = get(store, "family", "f")
    got["list"].append(3)

    assert get(store, "family", "f") == {"list": [1]}


def test_delete_removes_value_and_family_entry(store):
    """Store contract: delete forgets a key everywhere; a missing key is no error."""
    put(store, "refresh", "k", {"v": 1}, family="fam")
    with store.transaction() as tx:
        tx.delete("refresh", "k")
        tx.delete("refresh", "never-there")

    assert get(store, "refresh", "k") is None
    assert by_family(store, "refresh", "fam") == []
    put(store, "refresh", "k", {"v": 2})
    assert by_family(store, "refresh", "fam") == []


def test_by_family_filters_kind_and_family_in_key_order(store):
    """Store contract: by_family lists one kind of one family, ordered by key."""
    put(store, "refresh", "b", {"n": "b"}, family="fam")
    put(store, "refresh", "a", {"n": "a"}, family="fam")
    put(store, "refresh", "c", {"n": "c"}, family="other")
    put(store, "access", "d", {"n": "d"}, family="fam")

    assert by_family(store, "refresh", "fam") == [{"n": "a"}, {"n": "b"}]
    assert by_family(store, "access", "fam") == [{"n": "d"}]
    assert by_family(store, "refresh", "nobody") == []


def test_by_family_follows_updates(store):
    """Store contract: a put without a family keeps it; a put with another moves it."""
    put(store, "refresh", "k", {"v": 1}, family="one")
    put(store, "refresh", "k", {"v": 2})
    assert by_family(store, "refresh", "one") == [{"v": 2}]

    put(store, "refresh", "k", {"v": 3}, family="two")

    assert by_family(store, "refresh", "one") == []
    assert by_family(store, "refresh", "two") == [{"v": 3}]


def test_all_lists_every_value_of_one_kind(store):
    """Store contract: all() returns each value of a kind once, in no set order."""
    put(store, "client", "x", {"id": "x"})
    put(store, "client", "y", {"id": "y"})
    put(store, "code", "z", {"id": "z"})

    assert every(store, "client") == [{"id": "x"}, {"id": "y"}]
    assert every(store, "access") == []


def test_events_are_numbered_from_one_and_read_since(store):
    """DESIGN events: each event gets the next seq; events(since) gives the later."""
    seqs = [store.append_event({"n": n}) for n in range(3)]

    assert seqs == [1, 2, 3]
    assert store.events() == [
        {"n": 0, "seq": 1},
        {"n": 1, "seq": 2},
        {"n": 2, "seq": 3},
    ]
    assert store.events(since=2) == [{"n": 2, "seq": 3}]
    assert store.events(since=3) == []


def test_events_are_copies(store):
    """Store contract: changing an event after append or reading changes nothing."""
    event = {"detail": {"status": 200}}
    store.append_event(event)
    event["detail"]["status"] = 500
    store.events()[0]["detail"]["status"] = 502

    assert store.events() == [{"detail": {"status": 200}, "seq": 1}]


def test_clear_keeps_named_kinds_and_drops_events(store):
    """Store contract: clear(keep=...) keeps those kinds only; events start over."""
    for kind in KINDS:
        put(store, kind, "k", {"kind": kind}, family="fam")
    store.append_event({"n": 1})
    store.append_event({"n": 2})

    store.clear(keep=("client", "refresh"))

    assert {kind for kind in KINDS if get(store, kind, "k") is not None} == {
        "client",
        "refresh",
    }
    assert by_family(store, "refresh", "fam") == [{"kind": "refresh"}]
    assert by_family(store, "access", "fam") == []
    assert store.events() == []
    assert store.append_event({"n": 3}) == 1


def test_nested_transaction_joins_the_outer_one(store):
    """Store contract: a transaction opened inside another sees its writes."""
    with store.transaction() as outer:
        outer.put("settings", "k", 1)
        with store.transaction(write=False) as inner:
            assert inner.get("settings", "k") == 1
        with store.transaction() as inner:
            inner.put("settings", "k", 2)
        assert outer.get("settings", "k") == 2

    assert get(store, "settings", "k") == 2


# --------------------------------------------------- differential (hypothesis)

KEYS = st.sampled_from(["a", "b", "c"])
STORE_KINDS = st.sampled_from(["refresh", "access", "settings"])
FAMILIES = st.sampled_from(["f1", "f2"])
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)
OPERATIONS = st.one_of(
    st.tuples(st.just("put"), STORE_KINDS, KEYS, JSON, st.none() | FAMILIES),
    st.tuples(st.just("get"), STORE_KINDS, KEYS),
    st.tuples(st.just("delete"), STORE_KINDS, KEYS),
    st.tuples(st.just("by_family"), STORE_KINDS, FAMILIES),
    st.tuples(st.just("all"), STORE_KINDS),
    st.tuples(st.just("append_event"), st.dictionaries(st.text(max_size=3), JSON)),
    st.tuples(st.just("events"), st.integers(0, 5)),
    st.tuples(st.just("clear"), st.sets(STORE_KINDS).map(tuple)),
)


def apply(store: Store, operation: tuple) -> Any:
    name, *args = operation
    if name == "append_event":
        return store.append_event(*args)
    if name == "events":
        return store.events(*args)
    if name == "clear":
        return store.clear(keep=args[0])
    if name == "all":
        return every(store, *args)
    with store.transaction() as tx:
        if name == "put":
            return tx.put(*args[:3], family=args[3])
        return getattr(tx, name)(*args)


@settings(max_examples=60, deadline=None)
@given(st.lists(OPERATIONS, max_size=25))
def test_both_stores_answer_any_sequence_alike(operations):
    """Store contract: any sequence of calls gets equal answers from both stores."""
    with tempfile.TemporaryDirectory() as folder:
        memory, sqlite = MemoryStore(), SQLiteStore(Path(folder) / "store.db")
        for operation in operations:
            assert apply(memory, operation) == apply(sqlite, operation), operation


# ------------------------------------------------------------- SQLite only


def test_sqlite_rolls_back_a_transaction_that_raises(tmp_path):
    """Store contract (SQLite): an exception undoes the whole transaction."""
    store = SQLiteStore(tmp_path / "store.db")
    put(store, "settings", "kept", 1)

    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.put("settings", "kept", 2)
        tx.put("settings", "new", 3)
        raise RuntimeError("boom")

    assert get(store, "settings", "kept") == 1
    assert get(store, "settings", "new") is None
    put(store, "settings", "after", 4)
    assert get(store, "settings", "after") == 4


def test_sqlite_rolls_back_nested_writes_with_the_outer_one(tmp_path):
    """Store contract (SQLite): an inner transaction's writes fall with the outer."""
    store = SQLiteStore(tmp_path / "store.db")

    with pytest.raises(RuntimeError), store.transaction() as tx:
        with store.transaction() as inner:
            inner.put("settings", "inner", 1)
        tx.put("settings", "outer", 2)
        raise RuntimeError("boom")

    assert get(store, "settings", "inner") is None
    assert get(store, "settings", "outer") is None


def test_sqlite_survives_reopening_the_file(tmp_path):
    """DESIGN SQLite store: a new store on the same file sees clients and tokens."""
    path = tmp_path / "store.db"
    before = MockServer(store=SQLiteStore(path))
    client = before.client(before.credentials["main"].client_id)
    tokens = before.authority.start_grant(client, "user@example.com", ["all-apis"])

    after = MockServer(store=SQLiteStore(path))

    assert after.credentials == before.credentials
    assert {c.client_id for c in after.clients()} == {
        c.client_id for c in before.clients()
    }
    rotated = after.authority.refresh(client, tokens.refresh_token, None)
    assert rotated.generation == 1
    answer = before.authority.introspect(client, tokens.refresh_token)
    assert answer == {"active": False}


def test_sqlite_stores_on_one_file_share_commits(tmp_path):
    """DESIGN SQLite store: two stores on one file (two workers) see each other."""
    one, two = SQLiteStore(tmp_path / "store.db"), SQLiteStore(tmp_path / "store.db")

    put(one, "refresh", "k", {"v": 1}, family="fam")
    two.append_event({"n": 1})

    assert by_family(two, "refresh", "fam") == [{"v": 1}]
    assert one.events() == [{"n": 1, "seq": 1}]


def test_sqlite_event_append_does_not_wait_for_a_rotation(tmp_path):
    """Serving (issue 5): events have their own file and write lock.

    While one worker holds the records' write lock (a rotation), another worker
    appends its event at once; sharing one lock, the two were serialized.
    """
    import threading

    rotating, appending = SQLiteStore(tmp_path / "s.db"), SQLiteStore(tmp_path / "s.db")
    appended = threading.Event()

    def append() -> None:
        appending.append_event({"n": 1})
        appended.set()

    with rotating.transaction() as tx:
        tx.put("refresh", "k", {"v": 1})
        thread = threading.Thread(target=append)
        thread.start()
        was_quick = appended.wait(timeout=5)
    thread.join()

    assert was_quick
    assert appending.events() == [{"n": 1, "seq": 1}]
