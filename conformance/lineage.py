"""What the suite observed about one grant family, and its picture for the report.

Tokens are kept only as fingerprints. Times are simulated seconds since the
scenario started, so a thirty-day scenario run under freezegun draws the same as
one that waited for real.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from markupsafe import escape

from .redact import fingerprint, is_fingerprint

__all__ = ["KINDS", "Lineage", "LineageEvent", "format_duration", "lineage_svg"]

KINDS = ("issued", "consumed", "rejected", "revoked")

# Drawn colours and marker shapes, one per kind; the legend shows the same.
COLOURS = {
    "issued": "#2b6cb0",
    "consumed": "#2f855a",
    "rejected": "#c53030",
    "revoked": "#6b46c1",
}

# Kinds that end a token's usable life, in the order they are looked for.
ENDINGS = ("consumed", "revoked", "rejected")


class LineageEvent(NamedTuple):
    at: float
    fp: str
    generation: int | None
    kind: str
    detail: str | None


def _fp(token: str) -> str:
    return token if is_fingerprint(token) else fingerprint(token)


class Lineage:
    """Issues, consumptions, rejections and (inferred) revocations in one family.

    Safe to record from several threads, as race scenarios do.
    """

    def __init__(self, family: str | None = None) -> None:
        self.family = family
        self.events: list[LineageEvent] = []
        self._generations: dict[str, int] = {}
        self._lock = threading.Lock()

    def issued(self, token: str, generation: int, at: float) -> str:
        """Record a refresh token issued at generation; returns its fingerprint."""
        fp = _fp(token)
        with self._lock:
            self._generations.setdefault(fp, generation)
        self._add(at, fp, "issued", None, generation)
        return fp

    def consumed(self, token: str, at: float, detail: str | None = None) -> str:
        """Record that presenting the token rotated it (it is now used up)."""
        return self._add(at, _fp(token), "consumed", detail)

    def rejected(self, token: str, at: float, error: str) -> str:
        """Record that the target refused the token, with its error code."""
        return self._add(at, _fp(token), "rejected", error)

    def revoked(self, token: str, at: float, detail: str | None = "inferred") -> str:
        """Record that the token stopped working without being presented itself."""
        return self._add(at, _fp(token), "revoked", detail)

    def generation_of(self, token: str) -> int | None:
        with self._lock:
            return self._generations.get(_fp(token))

    def snapshot(self) -> list[LineageEvent]:
        """The events in time order, safe to read while others record."""
        with self._lock:
            return sorted(self.events, key=lambda e: e.at)

    @property
    def end(self) -> float:
        """The last time anything was observed."""
        return max((e.at for e in self.snapshot()), default=0.0)

    def to_json(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "events": [e._asdict() for e in self.snapshot()],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Lineage:
        lineage = cls(data.get("family"))
        for event in data.get("events", []):
            fp, generation = _fp(str(event["fp"])), event.get("generation")
            if event["kind"] == "issued" and generation is not None:
                lineage._generations.setdefault(fp, int(generation))
            lineage._add(
                float(event["at"]),
                fp,
                str(event["kind"]),
                event.get("detail"),
                generation,
            )
        return lineage

    def _add(
        self,
        at: float,
        fp: str,
        kind: str,
        detail: str | None,
        generation: int | None = None,
    ) -> str:
        with self._lock:
            if generation is None:
                generation = self._generations.get(fp)
            self.events.append(LineageEvent(float(at), fp, generation, kind, detail))
        return fp


# ------------------------------------------------------------------ drawing

WIDTH = 800
LABEL_WIDTH = 170
RIGHT_MARGIN = 24
ROW_HEIGHT = 26
TOP = 58
AXIS_HEIGHT = 46

# Tick steps in seconds, from one second to a week: "nice" values in each unit.
TICK_STEPS = (
    [1, 2, 5, 10, 15, 30]
    + [60 * m for m in (1, 2, 5, 10, 15, 30)]
    + [3600 * h for h in (1, 2, 3, 6, 12)]
    + [86400 * d for d in (1, 2, 5, 7, 14, 30)]
)
MAX_TICKS = 8


def format_duration(seconds: float) -> str:
    """A time since the scenario's start in the largest unit that reads well."""
    if seconds == 0:
        return "0"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if abs(seconds) >= size:
            return f"{seconds / size:.4g} {unit}"
    return f"{seconds:.3g} s"


def _tick_step(span: float) -> float:
    for step in TICK_STEPS:
        if span / step <= MAX_TICKS:
            return step
    return span / MAX_TICKS


class _Row(NamedTuple):
    fp: str
    generation: int | None
    events: list[LineageEvent]


def _rows(events: list[LineageEvent]) -> list[_Row]:
    """One row per token, in generation order, then by first sighting."""
    by_fp: dict[str, list[LineageEvent]] = {}
    for event in events:
        by_fp.setdefault(event.fp, []).append(event)

    rows = []
    for fp, seen in by_fp.items():
        generation = next(
            (e.generation for e in seen if e.generation is not None), None
        )
        rows.append(_Row(fp, generation, seen))
    far = float("inf")
    rows.sort(
        key=lambda r: (far if r.generation is None else r.generation, r.events[0].at)
    )
    return rows


def _marker(kind: str, x: float, y: float, tip: str) -> str:
    colour = COLOURS.get(kind, "#4a5568")
    title = f"<title>{escape(tip)}</title>"
    if kind == "issued":
        shape = f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{colour}">'
        return f"{shape}{title}</circle>"
    if kind == "consumed":
        shape = (
            f'<rect x="{x - 5:.1f}" y="{y - 5:.1f}" width="10" height="10" '
            f'fill="{colour}">'
        )
        return f"{shape}{title}</rect>"
    if kind == "rejected":
        d = (
            f"M{x - 5:.1f},{y - 5:.1f} L{x + 5:.1f},{y + 5:.1f} "
            f"M{x - 5:.1f},{y + 5:.1f} L{x + 5:.1f},{y - 5:.1f}"
        )
        shape = f'<path d="{d}" stroke="{colour}" stroke-width="3" fill="none">'
        return f"{shape}{title}</path>"
    corners = ((x, y - 6), (x + 6, y), (x, y + 6), (x - 6, y))
    points = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in corners)
    shape = f'<polygon points="{points}" fill="{colour}">'
    return f"{shape}{title}</polygon>"


def _legend() -> list[str]:
    parts = []
    for index, kind in enumerate(KINDS):
        x = LABEL_WIDTH + index * 110
        parts.append(_marker(kind, x, 40, kind))
        parts.append(f'<text x="{x + 10}" y="44">{kind}</text>')
    return parts


def lineage_svg(
    lineage: Lineage, title: str | None = None, end: float | None = None
) -> str:
    """The family as a timeline: one row per token, labelled by generation.

    end is when the scenario stopped watching (simulated seconds); open bars run
    to it. By default it is the last event.
    """
    events = lineage.snapshot()
    rows = _rows(events)
    start = min(0.0, min((e.at for e in events), default=0.0))
    end = max([e.at for e in events] + [end or 0.0])
    span = max(end - start, 1.0)
    plot_width = WIDTH - LABEL_WIDTH - RIGHT_MARGIN
    height = TOP + max(len(rows), 1) * ROW_HEIGHT + AXIS_HEIGHT

    def x_of(at: float) -> float:
        return LABEL_WIDTH + (at - start) / span * plot_width

    heading = title or (
        f"Lineage of {lineage.family}" if lineage.family else "Lineage of the family"
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{escape(heading)}" font-family="sans-serif" font-size="12" '
        f'class="rotcert-lineage">',
        f"<title>{escape(heading)}</title>",
        f'<text x="8" y="18" font-size="14" font-weight="bold">{escape(heading)}'
        "</text>",
        *_legend(),
    ]

    if not rows:
        parts.append(
            f'<text x="{LABEL_WIDTH}" y="{TOP + 16}">no tokens observed</text>'
        )

    # The axis first: its grid lines belong under the bars.
    parts.extend(_axis(start, span, TOP + max(len(rows), 1) * ROW_HEIGHT, x_of))
    for index, row in enumerate(rows):
        parts.extend(_row_parts(row, TOP + index * ROW_HEIGHT, end, x_of))
    parts.append("</svg>")
    return "\n".join(parts)


def _row_parts(
    row: _Row, top: float, end: float, x_of: Callable[[float], float]
) -> list[str]:
    y = top + ROW_HEIGHT / 2
    generation = "gen ?" if row.generation is None else f"gen {row.generation}"
    issued = next((e.at for e in row.events if e.kind == "issued"), row.events[0].at)
    ending = next(
        (e.at for kind in ENDINGS for e in row.events if e.kind == kind), None
    )
    parts = [
        f'<g class="rotcert-generation" data-generation="{escape(generation)}" '
        f'data-fp="{escape(row.fp)}">',
        f'<text x="8" y="{y + 4:.1f}">{escape(generation)} '
        f'<tspan fill="#4a5568">{escape(row.fp)}</tspan></text>',
    ]

    # An open bar (nothing ended the token) fades out at the end of the scenario.
    bar_end = ending if ending is not None else end
    dash = "" if ending is not None else ' stroke-dasharray="6 4"'
    parts.append(
        f'<line x1="{x_of(issued):.1f}" y1="{y:.1f}" x2="{x_of(bar_end):.1f}" '
        f'y2="{y:.1f}" stroke="#a0aec0" stroke-width="6"{dash}/>'
    )
    for event in row.events:
        tip = f"{generation} {row.fp} {event.kind} at {format_duration(event.at)}"
        if event.detail:
            tip += f": {event.detail}"
        parts.append(_marker(event.kind, x_of(event.at), y, tip))
    parts.append("</g>")
    return parts


def _axis(
    start: float, span: float, top: float, x_of: Callable[[float], float]
) -> list[str]:
    y = top + 6
    parts = [
        f'<line x1="{x_of(start):.1f}" y1="{y}" x2="{x_of(start + span):.1f}" '
        f'y2="{y}" stroke="#2d3748"/>'
    ]
    step = _tick_step(span)
    tick = 0.0 if start >= 0 else -step * int(-start // step)
    while tick <= start + span + 1e-9:
        x = x_of(tick)
        parts.append(
            f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{y}" stroke="#edf2f7"/>'
        )
        parts.append(
            f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 5}" stroke="#2d3748"/>'
        )
        parts.append(
            f'<text x="{x:.1f}" y="{y + 18}" text-anchor="middle">'
            f"{escape(format_duration(tick))}</text>"
        )
        tick += step
    parts.append(
        f'<text x="{WIDTH - RIGHT_MARGIN}" y="{y + 36}" text-anchor="end" '
        'fill="#4a5568">time since the scenario started (simulated)</text>'
    )
    return parts
