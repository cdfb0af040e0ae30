"""Build a dataset from 100,000 stored traces on PostgreSQL with ``manage.py build_dataset``: seconds, peak memory.

A first run creates every record, a second merges into them (none added, none changed), a third runs
after every expectation changed (every record rewritten, the old value kept in its history).
Targets: each run under 60 s and under 300 MB peak (traces are read in batches, memory stays flat).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time

from _common import ROOT, fresh_database, table
from export_dataset import build  # the same 100,000 traces with a root span and an expectation each

TRACES = int(os.environ.get("BENCH_RECORDS", "100000"))


def run_build(url: str) -> tuple[float, float, str]:
    """Time the real command in a child process and read its peak resident memory."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "manage.py", "build_dataset", "--experiment", "bench-export", "--name", "bench"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        check=True,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return seconds, peak_mb, done.stdout.strip()


def change_every_expectation() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("UPDATE traces_assessment SET value = to_jsonb('Changed: ' || (value #>> '{}'))")


def main() -> None:
    with fresh_database("reviewapp_bench_build_dataset") as url:
        started = time.perf_counter()
        build(TRACES)
        print(f"built {TRACES:,} traces in {time.perf_counter() - started:.0f} s", flush=True)
        from django.db import connections

        connections.close_all()
        rows = []
        for label in ("first run (all new)", "second run (all merged)", "third run (all changed)"):
            if label.startswith("third"):
                change_every_expectation()
            seconds, peak_mb, summary = run_build(url)
            print(summary, flush=True)
            rows += [
                (f"{label}: {TRACES:,} traces", f"{seconds:.1f} s ({TRACES / seconds:,.0f} traces/s)", "< 60 s"),
                (f"{label}: peak memory", f"{peak_mb:.0f} MB", "< 300 MB"),
            ]
        table("build_dataset from PostgreSQL", rows)


if __name__ == "__main__":
    main()
