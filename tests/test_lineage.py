"""Lineage: what the suite saw of a family, kept by fingerprint and drawn as SVG."""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET

import pytest

from conformance.lineage import Lineage, format_duration, lineage_svg
from mock_server.tokens import fingerprint

SVG = "{http://www.w3.org/2000/svg}"
DAY = 86400.0


def rotated_family(generations: int = 3, step: float = 60.0) -> Lineage:
    """gen 0 .. n-1 each consumed by the next rotation; the last one stays open."""
    lineage = Lineage("fam-1")
    for generation in range(generations):
        lineage.issued(f"refresh-token-{generation}", generation, generation * step)
        if generation:
            lineage.consumed(f"refresh-token-{generation - 1}", generation * step)
    return lineage


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def texts(root: ET.Element) -> list[str]:
    return ["".join(node.itertext()) for node in root.iter(f"{SVG}text")]


def test_tokens_are_kept_only_as_fingerprints():
    """No raw token is stored; every event names the token by its fingerprint."""
    lineage = Lineage()
    lineage.issued("the-raw-refresh-token", 0, 0)
    lineage.consumed("the-raw-refresh-token", 5)

    assert "the-raw-refresh-token" not in repr(lineage.to_json())
    assert {e.fp for e in lineage.events} == {fingerprint("the-raw-refresh-token")}


def test_events_carry_the_generation_of_the_issued_token():
    """Consumption, rejection and revocation inherit the token's generation."""
    lineage = Lineage()
    lineage.issued("token-gen-2", 2, 10)
    lineage.consumed("token-gen-2", 20)
    lineage.rejected("token-gen-2", 30, "invalid_grant")
    lineage.revoked("token-gen-2", 40)

    assert [(e.at, e.generation, e.kind, e.detail) for e in lineage.events] == [
        (10.0, 2, "issued", None),
        (20.0, 2, "consumed", None),
        (30.0, 2, "rejected", "invalid_grant"),
        (40.0, 2, "revoked", "inferred"),
    ]
    assert lineage.events[0] == (10.0, fingerprint("token-gen-2"), 2, "issued", None)


def test_json_round_trip():
    """to_json and from_json keep every event, fingerprint and generation."""
    lineage = rotated_family()
    lineage.rejected("refresh-token-0", 500, "invalid_grant")

    again = Lineage.from_json(lineage.to_json())

    assert again.to_json() == lineage.to_json()
    assert again.generation_of(fingerprint("refresh-token-2")) == 2


def test_recording_from_threads_loses_nothing():
    """Race scenarios record from many threads at once."""
    lineage = Lineage()

    def record(n: int) -> None:
        for i in range(50):
            lineage.rejected(f"token-{n}-{i}-xx", i, "invalid_grant")

    threads = [threading.Thread(target=record, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(lineage.snapshot()) == 400


def test_svg_is_well_formed_and_shows_every_generation():
    """The drawing parses as XML and has one labelled row per generation."""
    svg = lineage_svg(rotated_family(generations=5))

    root = parse(svg)
    rows = [g for g in root.iter(f"{SVG}g") if g.get("class") == "rotcert-generation"]
    assert [g.get("data-generation") for g in rows] == [f"gen {n}" for n in range(5)]
    labels = texts(root)
    for n in range(5):
        assert any(
            t.startswith(f"gen {n} {fingerprint(f'refresh-token-{n}')}") for t in labels
        )
    assert root.get("width") == "800"


def test_svg_has_markers_and_a_legend_for_each_kind():
    """Issued, consumed, rejected and revoked each have a legend entry and a marker."""
    lineage = rotated_family(generations=2)
    lineage.rejected("refresh-token-0", 120, "invalid_grant")
    lineage.revoked("refresh-token-1", 120)

    root = parse(lineage_svg(lineage))

    assert {"issued", "consumed", "rejected", "revoked"} <= set(texts(root))
    tips = ["".join(t.itertext()) for t in root.iter(f"{SVG}title")]
    assert any("rejected at 2 min: invalid_grant" in tip for tip in tips)
    assert any("gen 1" in tip and "revoked at 2 min: inferred" in tip for tip in tips)


def test_open_bar_runs_to_the_end_and_is_dashed():
    """A token nothing ended is drawn to the scenario's end, dashed."""
    lineage = rotated_family(generations=2, step=100)

    root = parse(lineage_svg(lineage, end=400))

    bars = [
        line
        for g in root.iter(f"{SVG}g")
        for line in g.iter(f"{SVG}line")
        if g.get("class") == "rotcert-generation"
    ]
    closed, still_open = bars
    assert closed.get("stroke-dasharray") is None
    assert still_open.get("stroke-dasharray") is not None
    assert float(still_open.get("x2")) == pytest.approx(800 - 24)


@pytest.mark.parametrize(
    ("span", "unit"),
    [(45.0, " s"), (50 * 60.0, " min"), (20 * 3600.0, " h"), (30 * DAY, " d")],
)
def test_axis_labels_use_human_units(span, unit):
    """From seconds to thirty days, ticks read in the unit that suits the span."""
    lineage = Lineage()
    lineage.issued("token-at-start", 0, 0)
    lineage.consumed("token-at-start", span)

    labels = texts(parse(lineage_svg(lineage)))

    ticks = [t for t in labels if t == "0" or t[:1].isdigit()]
    assert len(ticks) >= 3
    assert all(t == "0" or t.endswith(unit) for t in ticks)


def test_empty_lineage_draws_a_note():
    """A family with no observed tokens still draws valid SVG, saying so."""
    root = parse(lineage_svg(Lineage()))

    assert "no tokens observed" in texts(root)


def test_hostile_text_is_escaped():
    """A server's error string cannot inject markup into the drawing."""
    lineage = Lineage('fam"><script>alert(1)</script>')
    lineage.issued("token-hostile", 0, 0)
    lineage.rejected("token-hostile", 1, "<script>alert(2)</script>&")

    svg = lineage_svg(lineage)

    root = parse(svg)
    assert not list(root.iter(f"{SVG}script"))
    assert "<script>" not in svg
    assert any(
        "<script>alert(2)</script>&" in "".join(t.itertext()) for t in root.iter()
    )


def test_format_duration():
    """Durations since start read in s, min, h or d."""
    assert [format_duration(s) for s in (0, 1.5, 90, 7200, 30 * DAY)] == [
        "0",
        "1.5 s",
        "1.5 min",
        "2 h",
        "30 d",
    ]
