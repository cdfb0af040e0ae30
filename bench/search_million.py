"""Trace search at a million traces: list pages, filters and counts on PostgreSQL.

Builds ``bench_search_1m`` (1,000,000 ten-span traces, ~1 KB per span) once and reuses it while
its marker row says it is complete; ``--traces N`` builds/uses ``bench_search_<N>`` for a quick
run. Then, through the Django test client as a logged-in admin, times each page ``--runs`` times
and prints median/p95 server time and query count against the targets; the JSON API's
``GET /api/traces/`` (MLflow's ``search_traces``) is timed the same way with the admin's API token.

    python bench/search_million.py                  # 1M traces (the first build takes a while)
    python bench/search_million.py --traces 20000   # a quick run
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import psycopg
from _common import ADMIN_URL, median, percentile
from _search_data import is_complete, load


def database_url(traces: int) -> str:
    name = "bench_search_1m" if traces == 1_000_000 else f"bench_search_{traces}"
    return os.environ.get("BENCH_DATABASE_URL") or ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    for key, value in {
        "DEBUG": "0",
        "SECRET_KEY": "bench-only-secret-key-" + "x" * 30,
        "ALLOWED_HOSTS": "testserver",
        "SECURE_COOKIES": "0",
        "SECURE_SSL_REDIRECT": "0",
    }.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reviewapp.settings")
    os.environ.setdefault("CONN_MAX_AGE", "0")
    import django

    django.setup()


def ensure_database(traces: int) -> tuple[str, float | None]:
    """The benchmark database, built if missing or incomplete; returns its URL and the load time
    (None when it was reused). The data is loaded at migration 0003, as a database from before
    the search indexes would be; ``migrate`` then adds them (and reports how long that took)."""
    url = database_url(traces)
    if is_complete(url, traces):
        return url, None
    db = url.rsplit("/", 1)[1]
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db}"')
    setup_django(url)
    from django.core.management import call_command

    call_command("migrate", "traces", "0003", verbosity=0)
    print(f"Loading {traces:,} traces × 10 spans into {db} …", flush=True)
    seconds = load(url, traces, log=lambda line: print(line, flush=True))
    print(f"Loaded in {seconds:.0f} s", flush=True)
    return url, seconds


def migrate_and_analyze(url: str) -> None:
    """Apply what is not applied yet; VACUUM ANALYZE when anything was (autovacuum is off here)."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE bench_search_marker ADD COLUMN IF NOT EXISTS analyzed boolean DEFAULT false")
        analyzed = conn.execute("SELECT analyzed FROM bench_search_marker").fetchone()[0]
    if pending:
        from django.core.management import call_command

        started = time.monotonic()
        call_command("migrate", verbosity=0)
        print(f"Applied {len(pending)} migration(s) in {time.monotonic() - started:.0f} s", flush=True)
    if pending or not analyzed:
        started = time.monotonic()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            conn.execute("UPDATE bench_search_marker SET analyzed = true")
        print(f"VACUUM ANALYZE in {time.monotonic() - started:.0f} s", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--load-only", action="store_true", help="build the database and stop")
    args = parser.parse_args()
    if args.traces < 100:
        print("--traces must be at least 100", file=sys.stderr)
        return 1
    url, _ = ensure_database(args.traces)
    if args.load_only:
        return 0
    setup_django(url)
    migrate_and_analyze(url)
    with psycopg.connect(url) as conn:
        load_seconds = conn.execute("SELECT load_seconds FROM bench_search_marker").fetchone()[0]
    print(f"Data load (generate + insert {args.traces:,} traces, {args.traces * 10:,} spans): {load_seconds:.0f} s")
    failed = measure(args.traces, args.runs)
    print_sizes(url)
    return 1 if failed else 0


LIST_TARGET_MS = 50.0
SLOW_CASE_MS = 3000.0
SLOW_CASE_RUNS = 5
SEARCH_TARGET_MS = 500.0


def measure(traces: int, runs: int) -> bool:
    """Time every case; print the table; True when a case missed its target."""
    from _search_data import RARE_WORD
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from labeling import services
    from labeling.models import LabelingSession
    from traces.models import Trace
    from traces.pagination import Ordering, encode_cursor
    from traces.search import parse_order_by
    from traces.tokens import create_api_token

    call_command("collectstatic", "--noinput", verbosity=0)  # DEBUG is off, as in production
    admin, _ = User.objects.get_or_create(username="bench-admin", defaults={"is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(admin)
    session = LabelingSession.objects.filter(name="bench-search").first()
    if session is None:
        session = services.create_labeling_session(name="bench-search")
    explorable = Trace.objects.explorable()

    def cursor_at(position: int, order_by: str = "") -> str:
        """The cursor a "Load more" link has after ``position`` rows (found with an OFFSET, untimed)."""
        ordering = Ordering.from_order_by(parse_order_by([order_by] if order_by else None))
        row = ordering.apply(explorable).only("id", "request_time", "name", "execution_duration_ms")[position]
        return encode_cursor(ordering, row)

    first_day = explorable.order_by("request_time").values_list("request_time", flat=True).first()
    since = (first_day.date()).isoformat()
    until = (first_day.date()).isoformat()
    list_url = reverse("traces:list")
    add_url = reverse("labeling:session_add_traces", args=[session.pk])
    deep = min(100_000, traces - 60)
    slow, fast = "execution_time_ms DESC", "execution_time_ms ASC"
    experiment = str(explorable.values_list("experiment", flat=True)[0])
    L, S = LIST_TARGET_MS, SEARCH_TARGET_MS
    pages: list[tuple[str, float, str, dict[str, Any]]] = [
        ("list, unfiltered (newest first)", L, list_url, {}),
        (f"list, cursor after row {deep:,} (page {deep // 50:,})", L, list_url, {"after": cursor_at(deep)}),
        ("list, cursor 50 rows from the end", L, list_url, {"after": cursor_at(traces - 60)}),
        ("list, Load more (HTMX rows), middle", L, list_url, {"after": cursor_at(traces // 2), "_htmx": "load-more"}),
        (
            "list, oldest first, middle",
            L,
            list_url,
            {"order_by": "timestamp_ms ASC", "after": cursor_at(traces // 2, "timestamp_ms ASC")},
        ),
        ("list, slowest first, middle", L, list_url, {"order_by": slow, "after": cursor_at(traces // 2, slow)}),
        ("list, fastest first, middle", L, list_url, {"order_by": fast, "after": cursor_at(traces // 2, fast)}),
        ("list, name A–Z, middle", L, list_url, {"order_by": "name ASC", "after": cursor_at(traces // 2, "name ASC")}),
        ("list, one experiment", L, list_url, {"experiment": experiment}),
        ("list, state=ERROR", L, list_url, {"state": "ERROR"}),
        ("list, state=ERROR + one day", L, list_url, {"state": "ERROR", "since": since, "until": until}),
        ("list, tag env=staging (1/3)", L, list_url, {"tags": "env=staging"}),
        ("list, tag customer=cust-42 (1/1000)", L, list_url, {"tags": "customer=cust-42"}),
        ("list, tag key 'flagged' (1/20)", L, list_url, {"tags": "flagged"}),
        ("list, filter tags.env = 'dev'", L, list_url, {"filter_string": "tags.env = 'dev'"}),
        ("list, name contains 'trip'", L, list_url, {"name": "trip"}),
        ("list, feedback.correctness = 'yes'", L, list_url, {"filter_string": "feedback.correctness = 'yes'"}),
        ("list, feedback.helpfulness = 5", L, list_url, {"filter_string": "feedback.helpfulness = 5"}),
        (
            "list, metadata.`mlflow.modelId` = 'm-support-v3'",
            L,
            list_url,
            {"filter_string": "metadata.`mlflow.modelId` = 'm-support-v3'"},
        ),
        (
            f"list, span.content ILIKE '%{RARE_WORD}%' (~1%)",
            S,
            list_url,
            {"filter_string": f"span.content ILIKE '%{RARE_WORD}%'"},
        ),
        (
            "list, span.content ILIKE '%ord-424242-%' (1 trace)",
            S,
            list_url,
            {"filter_string": "span.content ILIKE '%ord-424242-%'"},
        ),
        (
            f"list, span.content ILIKE '%{RARE_WORD}%kalo%' (lines checked)",
            S,
            list_url,
            {"filter_string": f"span.content ILIKE '%{RARE_WORD}%kalo%'"},
        ),
        (
            f"list, span.content LIKE '%{RARE_WORD}%' (case-sensitive: spans checked)",
            S,
            list_url,
            {"filter_string": f"span.content LIKE '%{RARE_WORD}%'"},
        ),
        (f"list, text ILIKE '%{RARE_WORD}%'", S, list_url, {"filter_string": f"text ILIKE '%{RARE_WORD}%'"}),
        ("add-to-session preview, tag env=staging", L, add_url, {"tags": "env=staging"}),
        ("add-to-session preview, unfiltered", L, add_url, {}),
        ("exact count on demand, unfiltered", 0, list_url, {"count": "exact", "_htmx": "trace-count"}),
    ]
    # The JSON API's search_traces (GET /api/traces/, 100 trace infos a page), as MLflow's client calls it.
    api_url, api_page = "/api/traces/", {"max_results": "100"}
    api_pages: list[tuple[str, float, str, dict[str, Any]]] = [
        ("API search_traces, no filter (newest first)", L, api_url, {}),
        ("API search_traces, filter tags.env = 'dev'", L, api_url, {"filter_string": "tags.env = 'dev'"}),
        (
            "API search_traces, filter metadata.`mlflow.modelId` = 'm-support-v3'",
            L,
            api_url,
            {"filter_string": "metadata.`mlflow.modelId` = 'm-support-v3'"},
        ),
        ("API search_traces, model_id=m-support-v3", L, api_url, {"model_id": "m-support-v3"}),
        ("API search_traces, order_by timestamp_ms ASC", L, api_url, {"order_by": "timestamp_ms ASC"}),
        ("API search_traces, order_by execution_time_ms DESC", L, api_url, {"order_by": slow}),
        (
            "API search_traces, feedback.correctness = 'yes'",
            L,
            api_url,
            {"filter_string": "feedback.correctness = 'yes'"},
        ),
        (
            f"API search_traces, page_token after row {deep:,}",
            L,
            api_url,
            {"page_token": cursor_at(deep)},
        ),
    ]
    token = create_api_token(user=admin, name="bench-search")[1]
    api_headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    pages += [(label, target, url, {**api_page, **params, "_api": "1"}) for label, target, url, params in api_pages]
    rows: list[tuple[str, ...]] = []
    failed = False

    def timed(label: str, target: float | None, call) -> None:  # type: ignore[no-untyped-def]
        nonlocal failed
        times, counts, sql = [], [], []
        n = runs
        i = 0
        while i <= n:
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                call()
                elapsed = (time.perf_counter() - started) * 1000
            if i:  # the first run warms the caches
                times.append(elapsed)
                counts.append(len(queries))
                sql.append(sum(float(q["time"]) for q in queries.captured_queries) * 1000)
            elif elapsed > SLOW_CASE_MS:  # far over any target: a few runs say as much, in less time
                n = SLOW_CASE_RUNS
            i += 1
        if n != runs:
            label += f" ({n} runs)"
        p95 = percentile(times, 95)
        verdict = "—" if target is None else ("PASS" if p95 < target else "FAIL")
        failed |= verdict == "FAIL"
        goal = "—" if target is None else f"p95 < {target:.0f} ms"
        rows.append(
            (label, f"{median(times):.1f}", f"{p95:.1f}", f"{median(sql):.1f}", str(max(counts)), goal, verdict)
        )

    for label, target, url, params in pages:
        params = dict(params)
        target_header = params.pop("_htmx", None)
        headers = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": target_header} if target_header else {}
        if params.pop("_api", None):
            headers = api_headers

        def get(url: str = url, params: dict[str, Any] = params, headers: dict[str, str] = headers) -> None:
            response = client.get(url, params, **headers)
            assert response.status_code == 200, (url, params, response.status_code)

        timed(label, target or None, get)
    table_rows = [(f"{r[0]}", *r[1:]) for r in rows]
    print(f"\n### Trace search at {traces:,} traces ({runs} runs each, server time via the test client)\n")
    print("| case | median ms | p95 ms | SQL ms (median) | queries | target | result |")
    print("|---|---|---|---|---|---|---|")
    for row in table_rows:
        print("| " + " | ".join(row) + " |")
    sys.stdout.flush()
    return failed


def print_sizes(url: str) -> None:
    with psycopg.connect(url) as conn:
        total = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
        print(f"\nDisk: database {total}")
        print("\n| table | rows | heap + TOAST | indexes | total |\n|---|---|---|---|---|")
        for table_name in ("traces_trace", "traces_span", "traces_search_document", "traces_assessment"):
            rows, heap, indexes, whole = conn.execute(
                "SELECT c.reltuples::bigint, pg_size_pretty(pg_table_size(c.oid)),"
                " pg_size_pretty(pg_indexes_size(c.oid)), pg_size_pretty(pg_total_relation_size(c.oid))"
                " FROM pg_class c WHERE c.oid = %s::regclass",
                [table_name],
            ).fetchone()
            print(f"| {table_name} | {rows:,} | {heap} | {indexes} | {whole} |")
        print("\n| index | size |\n|---|---|")
        for name, size in conn.execute(
            "SELECT indexrelname, pg_size_pretty(pg_relation_size(indexrelid)) FROM pg_stat_user_indexes"
            " WHERE relname IN ('traces_trace', 'traces_span', 'traces_search_document', 'traces_assessment')"
            " ORDER BY pg_relation_size(indexrelid) DESC"
        ):
            print(f"| {name} | {size} |")


if __name__ == "__main__":
    sys.exit(main())
