"""Break parent loops in a trace's spans, so that every span hangs below some root.

A span that names itself (or a descendant) as its parent has no way up to a root, and the
span tree, drawn from the roots down, would never reach it. Real SDKs do not write such
traces, but hand-edited or buggy exporters do. One span of each loop becomes a root, and a
warning says which, so nothing is hidden and nothing is silently rewritten.

Works on anything with ``span_id``, ``parent_id``, ``name`` and ``start_time_ns`` (parsed
:class:`~traces.ingest.records.SpanRecord` objects or stored ``Span`` rows), so a streaming
ingest can run it on the spans it holds for a trace after each batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

LOOP_NAMES_SHOWN = 6


class TreeSpan(Protocol):
    span_id: str
    parent_id: str
    name: str
    start_time_ns: int


def break_parent_cycles(spans: Sequence[TreeSpan]) -> list[str]:
    """Make one span of every parent loop a root (``parent_id = ""``); one warning per loop broken.

    The span of the loop that started first becomes the root (the smallest span id on a tie):
    it is the one most likely to be the real caller. Iterative, so chains of any length are fine.
    """
    by_id = {span.span_id: span for span in spans}
    settled: set[str] = set()  # spans known to reach a root (or a missing parent)
    warnings: list[str] = []
    for start in spans:
        path: list[TreeSpan] = []
        on_path: dict[str, int] = {}
        current: TreeSpan | None = start
        while current is not None and current.span_id not in settled and current.span_id not in on_path:
            on_path[current.span_id] = len(path)
            path.append(current)
            current = by_id.get(current.parent_id) if current.parent_id else None
        if current is not None and current.span_id in on_path:
            loop = path[on_path[current.span_id] :]
            warnings.append(_break(loop))
        settled.update(on_path)
    return warnings


def _break(loop: list[TreeSpan]) -> str:
    new_root = min(loop, key=lambda span: (span.start_time_ns, span.span_id))
    new_root.parent_id = ""
    label = f"{new_root.name!r} ({new_root.span_id})"
    if len(loop) == 1:
        return f"span {label} is its own parent; it is shown as a root span"
    shown = f"{label} is shown as a root span"
    if len(loop) > LOOP_NAMES_SHOWN:
        return f"{len(loop):,} spans form a parent loop; {shown}"
    # Walk the loop from the new root upwards (child → parent), back to the new root.
    at = loop.index(new_root)
    names = [span.name for span in loop[at:] + loop[:at]] + [new_root.name]
    return f"spans {' → '.join(repr(name) for name in names)} form a parent loop; {shown}"
