"""Trace search at a million traces: list pages, filters and counts on PostgreSQL.

Builds ``bench_search_1m`` (1,000,000 ten-span traces, ~1 KB per span) once and reuses it while
its marker row says it is complete; ``--traces N`` builds/uses ``bench_search_<N>`` for a quick
run. Then, through the Django test client as a logged-in admin, times each page ``--runs`` times
and prints median/p95 server time and query count against the targets.

    python bench/search_million.py                  # 1M traces (the first build takes a while)
    python bench/search_million.py --traces 20000   # a quick run
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import psycopg
from _common import ADMIN_URL
from _search_data import is_complete, load


def database_url(traces: int) -> str:
    name = "bench_search_1m" if traces == 1_000_000 else f"bench_search_{traces}"
    return os.environ.get("BENCH_DATABASE_URL") or ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
