"""Import 10,000 traces × 10 spans into PostgreSQL; render a 2,000-span trace page.

Targets (2-core machine): ≥ 1,000 traces/s; detail page < 150 ms with ≤ 15 queries.
Also reported: how much of the import is parsing, and the rate of re-importing the same file
(every trace updated), which takes another path through the store.
"""

from __future__ import annotations

import io
import json
import tempfile
import time
from pathlib import Path

from _common import fresh_database, median, percentile, table

N_TRACES = 10_000
SPANS = 10
PAGE_RUNS = 20


def write_jsonl(path: Path) -> int:
    from traces.demo import build_trace

    size = 0
    with path.open("w") as handle:
        for seed in range(N_TRACES):
            line = json.dumps(build_trace(n_spans=SPANS, payload_bytes=1000, seed=seed))
            size += len(line)
            handle.write(line + "\n")
    return size


def bench_import(path: Path) -> tuple[float, int, int]:
    from django.core.management import call_command

    from traces.models import Span, Trace

    start = time.perf_counter()
    call_command("import_traces", str(path), "--experiment", "bench", stdout=io.StringIO())
    seconds = time.perf_counter() - start
    return seconds, Trace.objects.count(), Span.objects.count()


def bench_parse(path: Path) -> float:
    """Parsing alone (the command's ``read_trace_file``), to split the import time into parse and store."""
    from traces.ingest import read_trace_file

    start = time.perf_counter()
    read_trace_file(path)
    return time.perf_counter() - start


def bench_pages() -> list[tuple[str, str, str]]:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from traces.demo import build_trace
    from traces.ingest import parse_document, resolve_experiment, store_traces

    document = build_trace(n_spans=2000, payload_bytes=1000, seed=999_999, n_documents=200)
    store_traces(parse_document(document), experiment=resolve_experiment("bench-big"))
    trace_id = document["info"]["trace_id"]
    admin = User.objects.create_user("bench-admin", is_staff=True)
    client = Client()
    client.force_login(admin)

    def timed(url: str) -> tuple[list[float], int]:
        times, queries = [], 0
        client.get(url)  # warm-up
        for _ in range(PAGE_RUNS):
            with CaptureQueriesContext(connection) as ctx:
                start = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200, response.status_code
            queries = len(ctx.captured_queries)
        return times, queries

    detail, detail_queries = timed(reverse("traces:detail", args=[trace_id]))
    listing, list_queries = timed(reverse("traces:list"))
    return [
        ("detail page, 2,000 spans + 200 documents: median", f"{median(detail):.0f} ms", "< 150 ms"),
        ("detail page: p95", f"{percentile(detail, 95):.0f} ms", ""),
        ("detail page: SQL queries", str(detail_queries), "≤ 15"),
        ("trace list (10,001 traces, 50 per page): median", f"{median(listing):.0f} ms", ""),
        ("trace list: SQL queries", str(list_queries), "constant"),
    ]


def main() -> None:
    with fresh_database("reviewapp_bench"), tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "traces.jsonl"
        size = write_jsonl(path)
        seconds, traces, spans = bench_import(path)
        parse_seconds = bench_parse(path)
        again_seconds, _, _ = bench_import(path)
        rows = [
            ("traces imported", f"{traces:,}", f"{N_TRACES:,}"),
            ("file size", f"{size / 1e6:.0f} MB", ""),
            ("import time", f"{seconds:.1f} s", ""),
            ("traces/s", f"{traces / seconds:,.0f}", "≥ 1,000"),
            ("spans/s", f"{spans / seconds:,.0f}", ""),
            ("of which parsing (read_trace_file)", f"{parse_seconds:.1f} s ({parse_seconds / seconds:.0%})", ""),
            ("re-import of the same file (all updates): traces/s", f"{traces / again_seconds:,.0f}", ""),
        ]
        rows += bench_pages()
        table("Import and trace pages (PostgreSQL)", rows)


if __name__ == "__main__":
    main()
