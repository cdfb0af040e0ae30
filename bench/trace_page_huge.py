"""A trace with a 100 MB input: page size, server time, queries and Python memory of the pages showing it.

Pages: the trace page, its span panel (HTMX) for the huge span, the review screen's item, and
"show all" of the value. Runs on PostgreSQL (a fresh database) and on SQLite (a temporary file),
each in its own process; requests go through Django's test client, so the time is the server's.

    .venv/bin/python bench/trace_page_huge.py [--mb 100] [--runs 3] [--backend postgresql|sqlite|both]

Targets: every page under 1 MB and a constant number of queries; "show all" returns the whole value.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
PASSWORD = "bench-pass-123"
START_NS = 1_795_418_565_959_869_148


def huge_message(megabytes: int) -> str:
    line = "The patient pasted the whole discharge letter into the chat, page after page. "
    return (line * (megabytes * 1_000_000 // len(line) + 1))[: megabytes * 1_000_000]


def build(megabytes: int) -> tuple[str, str, str, str]:
    """One RAG-shaped trace whose root input is a single chat message of ``megabytes`` MB, in a review session."""
    from django.contrib.auth.models import User

    from labeling import services
    from labeling.models import LabelSchema
    from traces.ingest import resolve_experiment
    from traces.models import Span, Trace

    User.objects.create_user("bench-admin", password=PASSWORD, is_staff=True, is_superuser=True)
    reviewer = User.objects.create_user("bench-reviewer", password=PASSWORD)
    experiment = resolve_experiment("bench-huge")
    trace = Trace.objects.create(
        trace_id="tr-" + "b" * 32,
        experiment=experiment,
        name="huge_chat",
        request_time="2026-11-23T07:22:00Z",
        execution_duration_ms=900,
        request_preview="The patient pasted…",
        response_preview="Here is a summary.",
        span_count=5,
    )
    message = huge_message(megabytes)
    spans = [
        ("0" * 15 + "1", "", "CHAIN", {"messages": [{"role": "user", "content": message}]}, "Here is a summary."),
        ("0" * 15 + "2", "0" * 15 + "1", "RETRIEVER", {"query": "discharge"}, [{"page_content": "Doc text."}]),
        ("0" * 15 + "3", "0" * 15 + "1", "TOOL", {"x": 1}, {"ok": True}),
        ("0" * 15 + "4", "0" * 15 + "1", "LLM", {"messages": [{"role": "user", "content": "short"}]}, "fine"),
        ("0" * 15 + "5", "0" * 15 + "1", "TOOL", {"y": 2}, {"ok": True}),
    ]
    for index, (span_id, parent, kind, inputs, outputs) in enumerate(spans):
        Span.objects.create(
            trace=trace,
            span_id=span_id,
            parent_id=parent,
            name=kind.lower(),
            span_type=kind,
            status_code="OK",
            start_time_ns=START_NS + index * 1_000,
            end_time_ns=START_NS + 900_000_000 - index,
            inputs=inputs,
            outputs=outputs,
        )
    del message, spans
    schema = LabelSchema.objects.get(name="expected_response")
    session = services.create_labeling_session(name="bench huge", schemas=[schema], reviewers=[reviewer])
    services.add_traces_to_session(session=session, trace_ids=[trace.trace_id])
    return trace.get_absolute_url(), "0" * 15 + "1", str(session.pk), reviewer.username


def measure(client, url: str, runs: int, headers: dict[str, str], *, json_only: bool) -> dict[str, float]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    times, size, queries = [], 0, 0
    for _ in range(runs):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(url, **headers)
            body = response.content
            times.append(time.perf_counter() - started)
        assert response.status_code == 200, (url, response.status_code)
        assert not json_only or response["Content-Type"].startswith("application/json"), "not the value"
        size, queries = len(body), len(captured)
        del body, response
    tracemalloc.start()
    client.get(url, **headers).content  # noqa: B018 - the response is what is measured
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"bytes": size, "ms": statistics.median(times) * 1000, "queries": queries, "peak_mb": peak / 1e6}


def run_backend(backend: str, megabytes: int, runs: int) -> list[dict[str, object]]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reviewapp.settings")
    os.environ["CONN_MAX_AGE"] = "0"
    if backend == "postgresql":
        from _common import fresh_database

        context = fresh_database("bench_trace_page_huge")
    else:
        from contextlib import contextmanager

        @contextmanager
        def sqlite_file():
            with tempfile.TemporaryDirectory() as folder:
                os.environ["DATABASE_URL"] = f"sqlite:///{folder}/bench.sqlite3"
                import django

                django.setup()
                from django.core.management import call_command

                call_command("migrate", verbosity=0)
                yield os.environ["DATABASE_URL"]

        context = sqlite_file()
    with context:
        from django.contrib.auth.models import User
        from django.test import Client

        trace_url, span_id, session_pk, reviewer = build(megabytes)
        admin = Client()
        admin.force_login(User.objects.get(username="bench-admin"))
        expert = Client()
        expert.force_login(User.objects.get(username=reviewer))
        item_url = expert.get(f"/review/{session_pk}/")["Location"]
        pages = [
            ("trace page", admin, trace_url, {}),
            ("span panel (HTMX)", admin, f"{trace_url}?span={span_id}", {"HTTP_HX_REQUEST": "true"}),
            ("review item", expert, item_url, {}),
            ("show all (the value)", admin, f"{trace_url}?span={span_id}&value=inputs", {}),
        ]
        rows = []
        for name, client, url, headers in pages:
            try:
                result = measure(client, url, runs, headers, json_only=name.startswith("show all"))
            except AssertionError:
                result = {"bytes": 0, "ms": 0.0, "queries": 0, "peak_mb": 0.0, "missing": True}
            rows.append({"backend": backend, "page": name, **result})
        return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100, help="size of the huge input in MB (default 100)")
    parser.add_argument("--runs", type=int, default=3, help="timed requests per page (median; default 3)")
    parser.add_argument("--backend", choices=["postgresql", "sqlite", "both"], default="both")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # one backend, rows as JSON
    args = parser.parse_args()
    if args.json:
        print(json.dumps(run_backend(args.backend, args.mb, args.runs)))
        return 0
    backends = ["postgresql", "sqlite"] if args.backend == "both" else [args.backend]
    rows = []
    for backend in backends:
        command = [sys.executable, __file__, "--json", "--backend", backend, "--mb", str(args.mb)]
        done = subprocess.run([*command, "--runs", str(args.runs)], capture_output=True, text=True, cwd=HERE.parent)
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return 1
        rows += json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\n### A trace with a {args.mb} MB input (median of {args.runs} requests)\n")
    print("| backend | page | page size | server time | queries | Python peak |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        if r.get("missing"):
            print(f"| {r['backend']} | {r['page']} | — | — | — | — |")
            continue
        size = f"{r['bytes'] / 1e6:.2f} MB" if r["bytes"] >= 100_000 else f"{r['bytes'] / 1e3:.1f} kB"
        print(
            f"| {r['backend']} | {r['page']} | {size} | {r['ms']:,.0f} ms | {r['queries']} | {r['peak_mb']:,.0f} MB |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
