"""Span parent loops: broken at ingest so every span shows, with a warning kept on the trace."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from tests.traces.test_import_traces import DATA_DIR, NESTED_FILE, NESTED_TRACE_ID, run_import, span_tree
from traces.ingest import parse_bytes
from traces.ingest.records import SpanRecord
from traces.ingest.span_cycles import break_parent_cycles
from traces.models import Trace

pytestmark = pytest.mark.django_db

# nested_tool_spans.json: weather_agent ← plan, get_weather, postprocess ← convert_units (base64 ids)
IDS = {
    "weather_agent": "AuIgoJWo7BM=",
    "plan": "6+NhJCZorS0=",
    "get_weather": "nQN1pQlqKZg=",
    "postprocess": "CRlw8QaxhFM=",
    "convert_units": "olFTLCNaO74=",
}
HEX = {"weather_agent": "02e220a095a8ec13", "plan": "ebe361242668ad2d", "postprocess": "091970f106b18453"}


def nested_with_parents(tmp_path: Path, **parents: str) -> Path:
    """nested_tool_spans.json with some spans' parents changed (span name → parent span name)."""
    document = json.loads((DATA_DIR / NESTED_FILE).read_text())
    for raw in document["data"]["spans"]:
        if raw["name"] in parents:
            raw["parent_span_id"] = IDS[parents[raw["name"]]]
    path = tmp_path / "looped.json"
    path.write_text(json.dumps(document))
    return path


def drawn_span_rows(client: Client, trace: Trace) -> int:
    response = client.get(trace.get_absolute_url())
    assert response.status_code == 200
    return response.content.decode().count('class="span-row') + response.content.decode().count(" span-row")


@pytest.fixture
def admin_client(client: Client, admin_user) -> Client:
    client.force_login(admin_user)
    return client


def test_a_span_that_is_its_own_parent_becomes_a_root(tmp_path: Path, admin_client: Client) -> None:
    path = nested_with_parents(tmp_path, plan="plan")

    run = run_import(path)

    assert run.code == 0, run.err
    [warning] = run.err.strip().splitlines()
    assert warning.startswith(f"warning: {path}: {NESTED_TRACE_ID}: ")
    assert f"span 'plan' ({HEX['plan']}) is its own parent" in warning
    trace = Trace.objects.get()
    assert trace.spans.get(name="plan").parent_id == ""
    assert span_tree(trace) == [
        ("weather_agent", None),
        ("plan", None),
        ("get_weather", "weather_agent"),
        ("postprocess", "weather_agent"),
        ("convert_units", "postprocess"),
    ]
    assert trace.ingest_warnings == [warning.split(f"{NESTED_TRACE_ID}: ", 1)[1]]


def test_a_loop_through_the_root_no_longer_hides_the_whole_trace(tmp_path: Path, admin_client: Client) -> None:
    # weather_agent → convert_units → postprocess → weather_agent: no span had a way up to a root.
    path = nested_with_parents(tmp_path, weather_agent="convert_units")

    run = run_import(path)

    assert run.code == 0, run.err
    trace = Trace.objects.get()
    # The span of the loop that started first becomes the root; the rest of the tree is as recorded.
    assert span_tree(trace) == [
        ("weather_agent", None),
        ("plan", "weather_agent"),
        ("get_weather", "weather_agent"),
        ("postprocess", "weather_agent"),
        ("convert_units", "postprocess"),
    ]
    assert trace.name == "weather_agent"
    [message] = trace.ingest_warnings
    assert message == (
        "spans 'weather_agent' → 'convert_units' → 'postprocess' → 'weather_agent' form a parent loop; "
        f"'weather_agent' ({HEX['weather_agent']}) is shown as a root span"
    )
    assert drawn_span_rows(admin_client, trace) == 5


def test_the_trace_page_shows_every_span_and_the_warning(tmp_path: Path, admin_client: Client) -> None:
    run_import(nested_with_parents(tmp_path, postprocess="convert_units"))
    trace = Trace.objects.get()

    response = admin_client.get(trace.get_absolute_url())

    body = response.content.decode()
    assert response.status_code == 200
    assert drawn_span_rows(admin_client, trace) == 5
    assert 'class="notice ingest-warnings"' in body
    assert "changed on import" in body
    assert "form a parent loop" in body
    assert f"&#x27;postprocess&#x27; ({HEX['postprocess']}) is shown as a root span" in body


def test_a_trace_without_loops_has_no_warning(admin_client: Client) -> None:
    run = run_import(DATA_DIR / NESTED_FILE)

    trace = Trace.objects.get()
    assert run.err == ""
    assert trace.ingest_warnings == []
    assert "ingest-warnings" not in admin_client.get(trace.get_absolute_url()).content.decode()


def test_reimporting_the_repaired_trace_clears_the_warning(tmp_path: Path) -> None:
    run_import(nested_with_parents(tmp_path, plan="plan"))
    assert Trace.objects.get().ingest_warnings

    run = run_import(DATA_DIR / NESTED_FILE)

    assert run.code == 0, run.err
    assert Trace.objects.get().ingest_warnings == []


def test_otlp_spans_in_a_loop(tmp_path: Path) -> None:
    document = json.loads((DATA_DIR / "otlp_export_request_example.json").read_text())
    spans = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[0]["parentSpanId"] = spans[1]["spanId"]  # agent ↔ search_docs
    path = tmp_path / "otlp-loop.json"
    path.write_text(json.dumps(document))

    run = run_import(path)

    assert run.code == 0, run.err
    trace = Trace.objects.get()
    assert span_tree(trace) == [("agent", None), ("search_docs", "agent")]
    assert trace.name == "agent"
    assert len(trace.ingest_warnings) == 1


def test_session_copies_keep_the_warning(tmp_path: Path) -> None:
    from labeling import services

    run_import(nested_with_parents(tmp_path, plan="plan"))
    original = Trace.objects.get()
    session = services.create_labeling_session(name="loops")
    services.add_traces_to_session(session=session, trace_ids=[original.trace_id])

    copy = Trace.objects.exclude(pk=original.pk).get()
    assert copy.ingest_warnings == original.ingest_warnings != []


# --- the reusable function (the streaming OTLP ingest calls it per batch) -----------------------------


def span(span_id: str, parent_id: str = "", start: int = 0) -> SpanRecord:
    return SpanRecord(
        span_id=span_id,
        parent_id=parent_id,
        name=f"s{span_id}",
        span_type="UNKNOWN",
        status_code="OK",
        status_message="",
        start_time_ns=start,
        end_time_ns=None,
        inputs=None,
        outputs=None,
        attributes={},
        events=[],
    )


def parents(spans: list[Any]) -> dict[str, str]:
    return {s.span_id: s.parent_id for s in spans}


def test_break_parent_cycles_leaves_a_tree_alone() -> None:
    spans = [span("a"), span("b", "a"), span("c", "b"), span("d", "missing")]

    assert break_parent_cycles(spans) == []
    assert parents(spans) == {"a": "", "b": "a", "c": "b", "d": "missing"}


def test_break_parent_cycles_several_loops_and_a_tail() -> None:
    spans = [
        span("a", "b", start=5),
        span("b", "a", start=3),  # a ↔ b: b started first, becomes the root
        span("t", "a", start=9),  # hangs below the loop
        span("s", "s", start=1),  # its own parent
        span("x", "z", start=2),
        span("y", "x", start=2),
        span("z", "y", start=2),  # x → z → y → x with equal starts: the smallest id wins
    ]

    warnings = break_parent_cycles(spans)

    assert parents(spans) == {"a": "b", "b": "", "t": "a", "s": "", "x": "", "y": "x", "z": "y"}
    assert len(warnings) == 3
    assert warnings[1] == "span 'ss' (s) is its own parent; it is shown as a root span"
    assert break_parent_cycles(spans) == []  # nothing left to break


def test_break_parent_cycles_on_a_long_chain_is_iterative() -> None:
    spans = [span(f"{i:05d}", f"{i - 1:05d}" if i else "", start=i) for i in range(20_000)]
    spans[0].parent_id = spans[-1].span_id  # one loop through 20,000 spans

    [warning] = break_parent_cycles(spans)

    assert spans[0].parent_id == ""
    assert "20,000 spans form a parent loop" in warning


def test_parse_bytes_breaks_loops_before_picking_the_root() -> None:
    document = json.loads((DATA_DIR / NESTED_FILE).read_text())
    document["data"]["spans"][0]["parent_span_id"] = IDS["plan"]
    document["data"]["spans"][1]["parent_span_id"] = IDS["weather_agent"]
    del document["info"]["tags"]["mlflow.traceName"]

    [record] = parse_bytes(json.dumps(document).encode())

    assert record.name == "weather_agent"
    assert record.warnings
    assert json.loads(record.trace_metadata["reviewapp.ingest.warnings"]) == record.warnings
