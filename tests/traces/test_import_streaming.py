"""JSON Lines are imported in batches: memory stays flat, and a bad line still leaves nothing of the file."""

from __future__ import annotations

import gc
import json
import tracemalloc
from pathlib import Path

import pytest

from tests.traces.test_import_traces import (
    DATA_DIR,
    NESTED_FILE,
    assert_rejected_alone,
    counts,
    load_raw,
    run_import,
)
from traces.demo import build_trace
from traces.ingest import TraceFormatError, files, iter_trace_batches
from traces.models import Trace

pytestmark = pytest.mark.django_db


def write_jsonl(path: Path, n_traces: int, *, n_spans: int = 3, payload_bytes: int = 200, tail: str = "") -> Path:
    with path.open("w") as handle:
        for seed in range(n_traces):
            handle.write(json.dumps(build_trace(n_spans=n_spans, payload_bytes=payload_bytes, seed=seed)) + "\n")
        handle.write(tail)
    return path


def test_jsonl_comes_in_batches(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "seven.jsonl", 7)

    sizes = [len(batch) for batch in iter_trace_batches(path, batch_size=3)]

    assert sizes == [3, 3, 1]


def test_the_first_batch_is_ready_before_the_rest_of_the_file_is_read(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "bad-end.jsonl", 4, tail='{"info": \n')
    batches = iter_trace_batches(path, batch_size=2)

    first = next(batches)  # the broken last line has not been reached yet

    assert len(first) == 2
    with pytest.raises(TraceFormatError, match="line 5: not valid JSON"):
        list(batches)


def test_a_bad_line_after_several_batches_leaves_nothing_of_the_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(files, "BATCH_TRACES", 2)
    bad = write_jsonl(tmp_path / "late-error.jsonl", 7, tail=json.dumps({"info": {"trace_id": "tr-x"}}) + "\n")

    run = run_import(bad, DATA_DIR / NESTED_FILE)

    assert_rejected_alone(run, bad, "line 8: missing request_time")


def test_a_bad_value_in_a_later_batch_rolls_back_the_earlier_ones(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(files, "BATCH_TRACES", 2)
    late = load_raw("rag_retriever_dict_input.json")
    late["data"]["spans"][1]["name"] = "retr\u0000ieve"  # PostgreSQL's COPY would refuse it
    bad = write_jsonl(tmp_path / "late-nul.jsonl", 5, tail=json.dumps(late) + "\n")

    run = run_import(bad, DATA_DIR / NESTED_FILE)

    assert_rejected_alone(run, bad, "line 6: span 1 name contains a NUL character")


def test_a_trace_repeated_in_a_later_batch_is_stored_once(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(files, "BATCH_TRACES", 2)
    first = json.dumps(build_trace(n_spans=3, seed=1))
    changed = build_trace(n_spans=4, seed=1)
    path = tmp_path / "repeat.jsonl"
    path.write_text("\n".join([first, json.dumps(build_trace(n_spans=3, seed=2)), json.dumps(changed)]) + "\n")

    run = run_import(path)

    assert run.code == 0, run.err
    assert Trace.objects.count() == 2
    assert Trace.objects.get(trace_id=changed["info"]["trace_id"]).spans.count() == 4  # the later line wins


def test_a_one_line_file_is_one_document(tmp_path: Path) -> None:
    path = tmp_path / "one-line.json"
    path.write_text(json.dumps({"foo": 1}))

    run = run_import(path)

    assert run.code == 1
    assert run.err.startswith(f"error: {path}: not an MLflow trace")  # no "line 1:" for a one-document file


def peak_bytes_importing(path: Path) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        run = run_import(path, "--experiment", path.stem)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert run.code == 0, run.err
    return peak


def test_import_memory_does_not_grow_with_the_file(tmp_path: Path, monkeypatch) -> None:
    """Four times the lines, about the same peak: the file is never held whole (it used to peak at 7×)."""
    monkeypatch.setattr(files, "BATCH_TRACES", 25)
    small = write_jsonl(tmp_path / "small.jsonl", 100, payload_bytes=2000)
    large = write_jsonl(tmp_path / "large.jsonl", 400, payload_bytes=2000)
    peak_bytes_importing(small)  # warm-up: imports, caches, the experiment rows

    small_peak = peak_bytes_importing(small)
    large_peak = peak_bytes_importing(large)

    assert counts()[0] == 400
    assert large_peak < 1.5 * small_peak, (small_peak, large_peak)
    assert large_peak < large.stat().st_size, (large_peak, large.stat().st_size)
