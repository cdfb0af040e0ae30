"""Import 10,000 traces × 10 spans into PostgreSQL; render a 2,000-span trace page; import memory.

Targets (2-core machine): ≥ 1,000 traces/s; detail page < 150 ms with ≤ 15 queries.
Also reported: how much of the import is parsing, the rate of re-importing the same file
(every trace updated), which takes another path through the store, and the peak memory (RSS)
of ``manage.py import_traces`` on a ~100 MB JSONL file, which streams in batches: before
issue 9 it read the whole file and held every parsed trace (729 MB for 100 MB).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, fresh_database, median, percentile, table

N_TRACES = 10_000
SPANS = 10
PAGE_RUNS = 20
MEMORY_TRACES = 6_500  # × ~15 KB a line: a ~100 MB JSONL file
RSS_BEFORE_STREAMING_MB = 623  # this bench on the code before issue 9 (the issue measured 729 MB)


def write_jsonl(path: Path, n_traces: int = N_TRACES, first_seed: int = 0) -> int:
    from traces.demo import build_trace

    size = 0
    with path.open("w") as handle:
        for seed in range(first_seed, first_seed + n_traces):
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


# Runs import_traces in a fresh interpreter and prints its peak RSS. VmHWM is the high-water mark of
# the process's own memory since exec; ru_maxrss from wait4() would also count the pages of this
# (large) bench process that the child had before exec.
RSS_CHILD = """
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reviewapp.settings")
import django
django.setup()
from django.core.management import call_command
call_command("import_traces", *sys.argv[1:], stdout=open(os.devnull, "w"))
with open("/proc/self/status") as status:
    print(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
"""


def peak_rss_importing(path: Path) -> tuple[float, float]:
    """Peak resident memory (MB) and wall time of ``import_traces PATH`` in its own process."""
    arguments = [str(path), "--experiment", f"bench-rss-{path.stem}"]
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", RSS_CHILD, *arguments], cwd=ROOT, capture_output=True, text=True, check=True
    )
    seconds = time.perf_counter() - start
    return int(done.stdout.split()[-1]) * 1024 / 1e6, seconds  # VmHWM is in kB (KiB)


def bench_memory(tmp: Path) -> list[tuple[str, str, str]]:
    """Peak RSS importing a ~100 MB JSONL (new trace ids), against a one-trace file (Django's own footprint)."""
    big = tmp / "memory.jsonl"
    size = write_jsonl(big, MEMORY_TRACES, first_seed=N_TRACES)
    tiny = tmp / "tiny.jsonl"
    write_jsonl(tiny, 1, first_seed=N_TRACES + MEMORY_TRACES)
    baseline, _ = peak_rss_importing(tiny)
    peak, seconds = peak_rss_importing(big)
    return [
        (
            f"JSONL import, {MEMORY_TRACES:,} traces in {size / 1e6:.0f} MB: peak RSS",
            f"{peak:,.0f} MB",
            f"flat ({RSS_BEFORE_STREAMING_MB} MB before issue 9)",
        ),
        ("  peak RSS importing a one-trace file (the process itself)", f"{baseline:,.0f} MB", ""),
        ("  peak RSS / file size", f"{peak * 1e6 / size:.1f}×" if size else "", "< 1×"),
        ("  traces/s in its own process (incl. start-up)", f"{MEMORY_TRACES / seconds:,.0f}", ""),
    ]


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
        rows += bench_memory(Path(tmp))
        table("Import and trace pages (PostgreSQL)", rows)


if __name__ == "__main__":
    main()
