"""Comparing two evaluation runs of 10,000 traces each × 4 scorers on PostgreSQL: how long ``compare_runs`` takes.

Target: under 1 s for the comparison (metrics, matching on inputs, every scorer's changes) and the
details of one page of examples. The runs are written directly (traces, run traces with their
inputs key, CODE Feedback tagged with the run id), as ``execute_run`` leaves them; a tenth of the
examples regress on one scorer and a tenth improve on another.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime

from _common import fresh_database, median, table

TRACES = int(os.environ.get("BENCH_TRACES", "10000"))
BATCH = 2000
SCORERS = ["correct", "relevant", "answer_length", "polite"]
REPEATS = 5
PAGE = 20


def feedback_value(scorer: str, version: int, i: int) -> object:
    if scorer == "correct":  # v2 fails one in ten v1 passed
        return not (version == 2 and i % 10 == 0)
    if scorer == "relevant":  # v2 passes one in ten v1 failed
        return "yes" if i % 10 or version == 2 else "no"
    if scorer == "answer_length":
        return 100 + i % 50 + (version == 2) * (i % 3 - 1)
    return "yes"


def build_run(version: int, n: int) -> object:
    from evaluation.models import EvaluationRun, EvaluationRunTrace, RunSource, RunStatus, inputs_key
    from evaluation.scorers.runner import SOURCE_RUN_KEY
    from traces.ingest import resolve_experiment
    from traces.models import Assessment, Trace

    experiment = resolve_experiment(f"bench-compare-v{version}")
    now = datetime.now(tz=UTC)
    run = EvaluationRun.objects.create(
        name=f"v{version}", source_kind=RunSource.FILTER, status=RunStatus.FINISHED, started_at=now, finished_at=now
    )
    for first in range(0, n, BATCH):
        count = min(BATCH, n - first)
        traces = Trace.objects.bulk_create(
            [
                Trace(
                    trace_id=f"tr-{uuid.uuid4().hex}",
                    experiment=experiment,
                    name="rag",
                    request_time=now,
                    request_preview=f'{{"question": "Question {first + i}: is physiotherapy covered?"}}',
                    response_preview=f'"Version {version} answer {first + i}"',
                )
                for i in range(count)
            ]
        )
        EvaluationRunTrace.objects.bulk_create(
            [
                EvaluationRunTrace(
                    run=run,
                    trace=trace,
                    scored=True,
                    inputs_key=inputs_key({"question": f"Question {first + i}: is physiotherapy covered?"}),
                )
                for i, trace in enumerate(traces)
            ]
        )
        Assessment.objects.bulk_create(
            [
                Assessment(
                    assessment_id=f"a-{uuid.uuid4().hex}", trace=trace, name=scorer, kind="feedback",
                    value=feedback_value(scorer, version, first + i), rationale=f"{scorer} said so",
                    source_type="CODE", source_id=scorer, metadata={SOURCE_RUN_KEY: run.run_id},
                    create_time=now, last_update_time=now,
                )
                for i, trace in enumerate(traces)
                for scorer in SCORERS
            ],
            batch_size=BATCH,
        )  # fmt: skip
    from evaluation.runs import run_metrics

    run.metrics = run_metrics(run, [])
    run.save(update_fields=["metrics"])
    return run


def main() -> None:
    with fresh_database(f"bench_compare_{os.getpid()}"):
        started = time.perf_counter()
        a, b = build_run(1, TRACES), build_run(2, TRACES)
        print(f"built 2 runs of {TRACES} traces in {time.perf_counter() - started:.1f} s", flush=True)
        from django.db import connection

        from evaluation.comparison import compare_runs, load_details

        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        timings, detail_timings = [], []
        comparison = None
        for _ in range(REPEATS):
            started = time.perf_counter()
            comparison = compare_runs(a, b)
            timings.append(time.perf_counter() - started)
            started = time.perf_counter()
            load_details(comparison.examples[:PAGE])
            detail_timings.append(time.perf_counter() - started)
        assert comparison is not None
        counts = {s.name: (s.regressions, s.improvements) for s in comparison.scorers}
        assert comparison.matched == TRACES, comparison.matched
        assert counts["correct"] == (TRACES // 10, 0) and counts["relevant"] == (0, TRACES // 10), counts
        total = median(timings) + median(detail_timings)
        rows = [
            ("traces per run × scorers", f"{TRACES:,} × {len(SCORERS)}", ""),
            ("compare_runs (median of 5)", f"{median(timings) * 1000:.0f} ms", ""),
            (f"load_details, {PAGE} examples", f"{median(detail_timings) * 1000:.0f} ms", ""),
            ("comparison + one page", f"{total * 1000:.0f} ms", "< 1000 ms"),
            ("matched / changed examples", f"{comparison.matched:,} / {len(comparison.examples):,}", ""),
        ]
        rows += [(f"  {name}: regressions, improvements", f"{r:,}, {i:,}", "") for name, (r, i) in counts.items()]
        table(f"Comparing two runs: {TRACES:,} traces each × {len(SCORERS)} scorers (PostgreSQL)", rows)
        if total >= 1.0:
            raise SystemExit(f"over target: {total:.2f} s")


if __name__ == "__main__":
    main()
