"""Production monitoring: 20,000 traces over OTLP scored live by two registered code scorers and two workers.

The OTLP burst is ``otlp_ingest``'s (8 exporters, 10-span traces, children before their root) to
gunicorn on PostgreSQL. The experiment has two registered code scorers, ``response_length`` at
rate 1.0 and ``has_retrieved_documents`` (it reads the whole trace) at 0.2, and two ``db_worker``
processes score the monitoring queue while the burst comes in. Then, with one worker, single traces
arrive one at a time (a quiet production service) and their ingest-to-verdict latency is measured.

Latency is from the trace's completion (its root span committed, which queues its work) to its
verdict's write. Every sampled trace must be scored exactly once (the sample is recomputed here).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

os.environ.setdefault("BENCH_OTLP_TRACES", "20000")

from _common import ROOT, fresh_database, gunicorn, median, percentile, table
from otlp_ingest import CLIENTS, N_TRACES, build_requests, run_clients

RATES = {"length": ("response_length", 1.0), "docs": ("has_retrieved_documents", 0.2)}
QUIET_TRACES = 20
QUIET_GAP_S = 0.5
DRAIN_TIMEOUT_S = 1800


def _workers(url: str, count: int) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "DATABASE_URL": url, "TASKS_BACKEND": "django_tasks_db.DatabaseBackend", "CONN_MAX_AGE": "0"}
    command = [sys.executable, "manage.py", "db_worker", "--interval", "0.2", "--no-startup-delay", "--no-reload"]
    return [subprocess.Popen([*command, "-v0"], cwd=ROOT, env=env) for _ in range(count)]


def _stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.wait(timeout=60)


def _wait_until_drained(expected: int) -> float:
    from evaluation.monitoring.models import MonitoringResult, MonitoringWork

    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while MonitoringResult.objects.count() < expected or MonitoringWork.objects.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"not drained after {DRAIN_TIMEOUT_S} s")
        time.sleep(0.2)
    return time.monotonic()


def _latencies(results) -> list[float]:
    return [(r.scored_at - r.queued_at).total_seconds() for r in results]


def _quiet_phase(base: str, token: str) -> list[float]:
    """Single traces, one every QUIET_GAP_S, with one worker: the ingest-to-verdict latency of each."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans
    from otlp_ingest import _trace_spans

    from evaluation.monitoring.models import MonitoringResult

    bodies = []
    for k in range(QUIET_TRACES):
        spans = [span for _, span in sorted(_trace_spans(N_TRACES + 1000 + k, time.time_ns()), key=lambda s: s[0])]
        message = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])])
        bodies.append(message.SerializeToString())
    before = MonitoringResult.objects.count()
    for body in bodies:
        run_clients(base, token, [[body]])
        time.sleep(QUIET_GAP_S)
    quiet = MonitoringResult.objects.filter(registration__name="length").order_by("-id")
    deadline = time.monotonic() + 120
    while MonitoringResult.objects.count() - before < QUIET_TRACES and time.monotonic() < deadline:
        time.sleep(0.1)
    return _latencies(list(quiet[:QUIET_TRACES]))


def main() -> None:
    with fresh_database("bench_monitoring") as url:
        from django.contrib.auth.models import User
        from django.db import connections

        from evaluation.monitoring.models import MonitoringResult, MonitoringWork
        from evaluation.monitoring.registrations import register_scorer
        from evaluation.monitoring.sampling import is_sampled
        from traces.models import Assessment, Experiment, Trace
        from traces.tokens import create_api_token

        admin = User.objects.create_user("bench-admin", is_staff=True, is_superuser=True)
        token = create_api_token(user=admin, name="bench exporter")[1]
        experiment = Experiment.objects.create(name="bench", mlflow_experiment_id="1")
        for name, (scorer, rate) in RATES.items():
            register_scorer(experiment=experiment, name=name, scorer_name=scorer, sample_rate=rate)
        connections.close_all()
        work = [build_requests(client)[0] for client in range(CLIENTS)]
        with gunicorn(url, workers=4) as base:
            workers = _workers(url, 2)
            try:
                start = time.monotonic()
                ingest_s, _, failures = run_clients(base, token, work)
                trace_ids = list(Trace.objects.values_list("trace_id", flat=True))
                expected = {
                    name: sum(is_sampled(t, name, rate) for t in trace_ids) for name, (_, rate) in RATES.items()
                }
                drained = _wait_until_drained(sum(expected.values()))
                burst = list(MonitoringResult.objects.only("scored_at", "queued_at"))
            finally:
                _stop(workers)
            scored = {name: MonitoringResult.objects.filter(registration__name=name).count() for name in RATES}
            pairs = MonitoringResult.objects.values_list("trace_id", "registration_version_id").distinct().count()
            feedback = Assessment.objects.filter(name__in=list(RATES)).count()
            left = MonitoringWork.objects.count()
            one = _workers(url, 1)
            try:
                time.sleep(3)  # the worker is up before the first trace
                quiet = _quiet_phase(base, token)
            finally:
                _stop(one)
        burst_latency = _latencies(burst)
        total = sum(expected.values())
        exact = scored == expected and pairs == total and feedback == total and not left
        rows = [
            ("traces ingested over OTLP (8 exporters)", f"{len(trace_ids):,}", f"{N_TRACES:,}"),
            ("ingest wall time / traces/s", f"{ingest_s:.1f} s / {len(trace_ids) / ingest_s:,.0f}", ""),
            ("sampled: length (rate 1.0) / docs (rate 0.2)", f"{expected['length']:,} / {expected['docs']:,}", ""),
            ("scored: length / docs", f"{scored['length']:,} / {scored['docs']:,}", "= sampled"),
            (
                "distinct (trace, version) results / Feedback rows",
                f"{pairs:,} / {feedback:,}",
                f"{total:,} / {total:,}",
            ),
            ("work left in the queue", str(left), "0"),
            ("burst: first trace in → queue drained", f"{drained - start:.1f} s", ""),
            ("scoring throughput, 2 workers (verdicts/s)", f"{total / (drained - start):,.0f}", ""),
            (
                "burst ingest-to-verdict p50 / p95",
                f"{median(burst_latency):.1f} s / {percentile(burst_latency, 95):.1f} s",
                "",
            ),
            (
                f"quiet traffic, 1 worker: ingest-to-verdict p50 / p95 ({len(quiet)} traces)",
                f"{median(quiet):.2f} s / {percentile(quiet, 95):.2f} s",
                "≤ 5 s",
            ),
            ("export requests failed", str(len(failures)), "0"),
        ]
        table("Live monitoring (PostgreSQL, gunicorn, 2 db_workers)", rows)
        if not exact or failures or len(quiet) < QUIET_TRACES or percentile(quiet, 95) > 5:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
