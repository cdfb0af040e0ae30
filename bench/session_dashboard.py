"""Sessions at scale: adding 10,000 traces to a session, and that session's dashboard.

On a fresh PostgreSQL database: 10,000 ten-span source traces (~1 KB per span), plus an unrelated
experiment of 10,000 traces carrying 100,000 human assessments and another session with its own
answers (the rest of the database, which the dashboard must not depend on). The add runs as the
background task does (inline, one process), then 4,500 answers from three reviewers are given on
750 items (two questions), and the dashboard is fetched with Django's test client.

Targets: dashboard p95 < 200 ms at 10,000 items with 4,500 answers; constant query count.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from _common import fresh_database, median, percentile, table

N_TRACES = 10_000
SPANS_PER_TRACE = 10
N_ELSEWHERE = 10_000
ASSESSMENTS_ELSEWHERE = 10  # per unrelated trace: 100,000 human assessments
REVIEWERS = ("ana", "ben", "cho")
ANSWERED_ITEMS = 750  # × 3 reviewers × 2 questions = 4,500 answers
RUNS = 40


def load_traces(experiment_id: int, n: int, spans: int, prefix: str) -> None:
    """Source traces and their spans, generated server-side (the load is not what is measured)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO traces_trace (trace_id, experiment_id, name, state, request_time, execution_duration_ms,
                request_preview, response_preview, client_request_id, model_id, tags, trace_metadata, span_count,
                created_at, updated_at)
            SELECT %s || g, %s, 'rag', 'OK', now() - g * interval '1 second', 62,
                '{"question": "What is ' || g || '?"}', '"An answer"', '', 'm-1', '{"env": "prod"}'::jsonb,
                '{"mlflow.modelId": "m-1"}'::jsonb, %s, now(), now()
            FROM generate_series(1, %s) g
            """,
            [prefix, experiment_id, spans, n],
        )
        if spans:
            cursor.execute(
                """
                INSERT INTO traces_span (trace_id, span_id, parent_id, name, span_type, status_code, status_message,
                    start_time_ns, end_time_ns, inputs, outputs, attributes, events)
                SELECT t.id, lpad(to_hex(s), 16, '0'), CASE WHEN s = 1 THEN '' ELSE lpad('1', 16, '0') END,
                    'step_' || s, CASE WHEN s = 1 THEN 'CHAIN' ELSE 'LLM' END, 'OK', '',
                    1795418565959869148 + s * 10000, 1795418565959869148 + s * 10000 + 5000000,
                    jsonb_build_object('query', 'q' || t.id, 'pad', repeat('x', 700)),
                    jsonb_build_object('result', s), '{"mlflow.spanType": "\\"LLM\\""}'::jsonb, '[]'::jsonb
                FROM traces_trace t CROSS JOIN generate_series(1, %s) s
                WHERE t.experiment_id = %s
                """,
                [spans, experiment_id],
            )


def load_unrelated_assessments(experiment_id: int) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO traces_assessment (assessment_id, trace_id, name, kind, value, rationale, source_type,
                source_id, span_id, overrides, valid, metadata, create_time, last_update_time)
            SELECT 'a-' || t.id || '-' || k, t.id, CASE WHEN k %% 2 = 0 THEN 'correct' ELSE 'helpfulness' END,
                'feedback', CASE WHEN k %% 2 = 0 THEN 'true'::jsonb ELSE '"very"'::jsonb END, '', 'HUMAN',
                'someone' || k, '', '', true, '{}'::jsonb, now(), now()
            FROM traces_trace t CROSS JOIN generate_series(1, %s) k
            WHERE t.experiment_id = %s
            """,
            [ASSESSMENTS_ELSEWHERE, experiment_id],
        )


def schemas() -> list:
    from labeling import services
    from labeling.models import LabelSchema

    return [
        services.save_label_schema(schema=LabelSchema(name="correct", title="Correct?", input_type="pass_fail")),
        services.save_label_schema(
            schema=LabelSchema(
                name="helpfulness", title="How helpful?", input_type="categorical", options=["very", "somewhat", "not"]
            )
        ),
    ]


def add_in_background(session, source) -> None:
    """The large add as the page starts it, with the task run inline (as a db_worker would)."""
    from labeling import services
    from labeling.tasks import run_trace_add

    selection = services.resolve_trace_selection(traces=source)
    job = services.start_trace_add(session=session, source_ids=selection.source_ids, requested_by=None, enqueue=False)
    run_trace_add.call(job_id=job.pk)
    job.refresh_from_db()
    assert job.state == "done", job.error


def answer(session, users: dict) -> None:
    """4,500 answers: 750 items × 3 reviewers × 2 questions, with some disagreement."""
    from django.utils import timezone

    from labeling.models import ItemReview, ReviewStatus
    from traces.models import Assessment

    now = timezone.now()
    items = list(session.items.order_by("position")[:ANSWERED_ITEMS])
    assessments, reviews = [], []
    for i, item in enumerate(items):
        for r, name in enumerate(REVIEWERS):
            reviews.append(
                ItemReview(
                    item=item, reviewer=users[name], status=ReviewStatus.SUBMITTED, claimed_at=now, submitted_at=now
                )
            )
            for question, value in (("correct", (i + r) % 5 != 0), ("helpfulness", ["very", "somewhat"][(i * r) % 2])):
                assessments.append(
                    Assessment(
                        assessment_id=f"a-{uuid.uuid4().hex}",
                        trace_id=item.trace_id,
                        name=question,
                        kind="feedback",
                        value=value,
                        source_type="HUMAN",
                        source_id=name,
                        metadata={"labeling_session_id": session.pk, "review_item_id": item.pk},
                        create_time=now,
                        last_update_time=now,
                    )
                )
    Assessment.objects.bulk_create(assessments, batch_size=1000)
    ItemReview.objects.bulk_create(reviews, batch_size=1000)
    session.items.filter(pk__in=[i.pk for i in items]).update(submitted_count=len(REVIEWERS))


def backend_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the PostgreSQL backend serving this connection has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def dashboard(session, admin) -> tuple[list[float], list[float], set[int]]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(admin)
    url = session.get_absolute_url()
    for _ in range(3):  # warm caches
        assert client.get(url).status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    local = Path(f"/proc/{backend}/stat").exists()  # the database server runs on this machine
    times, cpu, queries = [], [], set()
    for _ in range(RUNS):
        with CaptureQueriesContext(connection) as ctx:
            db_before = backend_cpu_seconds(backend) if local else 0.0
            cpu_before = time.process_time()
            start = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - start) * 1000)
            used = time.process_time() - cpu_before
            cpu.append((used + (backend_cpu_seconds(backend) - db_before if local else 0.0)) * 1000)
        assert response.status_code == 200
        queries.add(len(ctx.captured_queries))
    if os.environ.get("BENCH_PROFILE") == "python":
        import cProfile
        import pstats

        profile = cProfile.Profile()
        profile.runcall(client.get, url)
        pstats.Stats(profile).sort_stats("cumulative").print_stats(45)
    elif os.environ.get("BENCH_PROFILE"):  # the slowest statements of one request, with their plans
        with CaptureQueriesContext(connection) as ctx:
            client.get(url)
        for query in sorted(ctx.captured_queries, key=lambda q: -float(q["time"])):
            print(f"\n-- {float(query['time']) * 1000:.1f} ms\n{query['sql'][:1500]}")
            if query["sql"].startswith("SELECT"):
                with connection.cursor() as cursor:
                    cursor.execute("EXPLAIN ANALYZE " + query["sql"])
                    print("\n".join(row[0] for row in cursor.fetchall()))
    return times, cpu, queries


def main() -> None:
    with fresh_database(f"bench_sessions_{os.getpid()}"):
        from django.contrib.auth.models import User
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        from labeling import services
        from traces.models import Experiment, Trace

        start = time.perf_counter()
        source = Experiment.objects.create(name="production")
        elsewhere = Experiment.objects.create(name="elsewhere")
        load_traces(source.pk, N_TRACES, SPANS_PER_TRACE, "tr-src-")
        load_traces(elsewhere.pk, N_ELSEWHERE, 1, "tr-else-")
        load_unrelated_assessments(elsewhere.pk)
        questions = schemas()
        users = {name: User.objects.create_user(name) for name in REVIEWERS}
        admin = User.objects.create_user("boss", is_staff=True, is_superuser=True)
        first_2000 = list(Trace.objects.filter(experiment=elsewhere).values_list("pk", flat=True)[:2000])
        other = services.create_labeling_session(name="other", schemas=questions, reviewers=users.values())
        services.add_traces_to_session(session=other, traces=Trace.objects.filter(pk__in=first_2000))
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        load_seconds = time.perf_counter() - start

        session = services.create_labeling_session(name="big", schemas=questions, reviewers=users.values())
        with CaptureQueriesContext(connection) as ctx:
            start = time.perf_counter()
            add_in_background(session, Trace.objects.filter(experiment=source))
            add_seconds = time.perf_counter() - start
        add_queries = len(ctx.captured_queries)
        assert session.items.count() == N_TRACES
        answer(session, users)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        times, cpu, queries = dashboard(session, admin)
        load = os.getloadavg()[0]

    table(
        "Sessions at scale (PostgreSQL)",
        [
            ("data load (not measured work)", f"{load_seconds:.1f} s", ""),
            (
                f"add {N_TRACES:,} traces × {SPANS_PER_TRACE} spans (background task, inline)",
                f"{add_seconds:.2f} s",
                "",
            ),
            ("add: queries", str(add_queries), ""),
            (f"dashboard, {N_TRACES:,} items, 4,500 answers: median", f"{median(times):.0f} ms", ""),
            (f"dashboard: p95 ({RUNS} runs)", f"{percentile(times, 95):.0f} ms", "< 200 ms"),
            ("dashboard: queries", " / ".join(map(str, sorted(queries))), "constant"),
            (
                "dashboard: CPU per request, app + database: median / p95",
                f"{median(cpu):.0f} / {percentile(cpu, 95):.0f} ms",
                "",
            ),
            ("machine load (1-min average, 2 cores) during the runs", f"{load:.1f}", ""),
        ],
    )


if __name__ == "__main__":
    main()
