"""Export 100,000 labeled records from PostgreSQL to JSONL and to Parquet: seconds and peak memory.

Targets: under 10 s and under 300 MB peak for each.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from _common import ROOT, fresh_database, table

RECORDS = int(os.environ.get("BENCH_RECORDS", "100000"))
BATCH = 5000


def build(n: int) -> None:
    """n traces with a root span, n session items, n expectation answers (bulk inserts, no copy service)."""
    from django.contrib.auth.models import User

    from labeling import services
    from labeling.models import LabelSchema, ReviewItem
    from traces.ingest import resolve_experiment
    from traces.models import Assessment, Span, Trace

    reviewer = User.objects.create_user("bench-reviewer")
    session = services.create_labeling_session(
        name="bench", schemas=[LabelSchema.objects.get(name="expected_response")], reviewers=[reviewer]
    )
    experiment = resolve_experiment("bench-export")
    now = datetime.now(tz=UTC)
    for start in range(0, n, BATCH):
        count = min(BATCH, n - start)
        traces = Trace.objects.bulk_create(
            [
                Trace(
                    trace_id=f"tr-{uuid.uuid4().hex}", experiment=experiment, name="rag", request_time=now, span_count=1
                )
                for _ in range(count)
            ]
        )
        Span.objects.bulk_create(
            [
                Span(
                    trace=t,
                    span_id=f"{i:016x}",
                    name="rag",
                    span_type="CHAIN",
                    start_time_ns=1,
                    end_time_ns=2,
                    inputs={"question": f"Question number {start + i}: is this covered by my plan?"},
                    outputs={"answer": "Yes, up to 20 sessions a year with a 20% co-pay. " * 3},
                )
                for i, t in enumerate(traces)
            ]
        )
        ReviewItem.objects.bulk_create(
            [
                ReviewItem(
                    session=session, trace=t, source_trace=t, source_trace_id_text=t.trace_id, position=start + i + 1
                )
                for i, t in enumerate(traces)
            ]
        )
        Assessment.objects.bulk_create(
            [
                Assessment(
                    assessment_id=f"a-{uuid.uuid4().hex}",
                    trace=t,
                    name="expected_response",
                    kind="expectation",
                    value=f"The plan covers it ({start + i}).",
                    source_type="HUMAN",
                    source_id="bench-reviewer",
                    create_time=now,
                    last_update_time=now,
                )
                for i, t in enumerate(traces)
            ]
        )


def run_export(url: str, fmt: str, path: Path) -> tuple[float, float]:
    """Time the real command in a child process and read its peak resident memory."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "manage.py", "export_dataset", "--session", "bench", "--format", fmt, "--output", str(path)],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(peak_kb, before) / 1024


def main() -> None:
    with fresh_database("reviewapp_bench_export") as url, tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        build(RECORDS)
        print(f"built {RECORDS:,} labeled items in {time.perf_counter() - started:.0f} s", flush=True)
        from django.db import connections

        connections.close_all()
        rows = []
        for fmt in ("jsonl", "parquet"):
            path = Path(tmp) / f"export.{fmt}"
            seconds, peak_mb = run_export(url, fmt, path)
            rows += [
                (f"{fmt}: {RECORDS:,} records", f"{seconds:.1f} s", "< 10 s"),
                (f"{fmt}: peak memory", f"{peak_mb:.0f} MB", "< 300 MB"),
                (f"{fmt}: file size", f"{path.stat().st_size / 1e6:.0f} MB", ""),
            ]
        table("Export from PostgreSQL", rows)


if __name__ == "__main__":
    main()
