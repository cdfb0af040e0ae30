"""Evaluation run over 10,000 stored traces × the 4 example code scorers on PostgreSQL: traces/s and where time goes.

Target: at least 500 traces/s. "Our code" is everything but the scorer calls: loading traces and
spans, building the arguments (conversation rule, ``mlflow.entities.Trace.from_dict``), turning
results into Feedback and writing them; "scorers" is the CPU time spent inside the scorer calls.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from _common import fresh_database, table

TRACES = int(os.environ.get("BENCH_TRACES", "10000"))
BATCH = 2000
SCORERS = ["response_length", "has_retrieved_documents", "mentions_expected_fact", "latency_under_threshold"]


def build(n: int) -> None:
    """n RAG-shaped traces (root CHAIN, RETRIEVER with 3 documents, CHAT_MODEL) with an expected_facts each."""
    from traces.ingest import resolve_experiment
    from traces.models import Assessment, Span, Trace

    experiment = resolve_experiment("bench-evaluate")
    now = datetime.now(tz=UTC)
    start_ns = int(now.timestamp() * 1e9)
    for first in range(0, n, BATCH):
        count = min(BATCH, n - first)
        traces = Trace.objects.bulk_create(
            [
                Trace(
                    trace_id=f"tr-{uuid.uuid4().hex}",
                    experiment=experiment,
                    name="rag",
                    request_time=now,
                    execution_duration_ms=800 + (first + i) % 2000,
                    span_count=3,
                )
                for i in range(count)
            ]
        )
        spans, assessments = [], []
        for i, trace in enumerate(traces):
            question = f"Question {first + i}: is physiotherapy covered by my plan?"
            answer = "Yes, physiotherapy is covered: up to 20 sessions a year with a 20% co-pay."
            documents = [
                {"page_content": f"Policy section {k}: physiotherapy limits.", "metadata": {"doc_uri": f"s{k}.md"}}
                for k in range(3)
            ]
            spans += [
                Span(trace=trace, span_id=f"{1:016x}", name="rag", span_type="CHAIN", start_time_ns=start_ns,
                     end_time_ns=start_ns + 900_000_000, inputs={"question": question}, outputs=answer),
                Span(trace=trace, span_id=f"{2:016x}", parent_id=f"{1:016x}", name="retrieve",
                     span_type="RETRIEVER", start_time_ns=start_ns + 1000, end_time_ns=start_ns + 100_000_000,
                     inputs={"query": question}, outputs=documents),
                Span(trace=trace, span_id=f"{3:016x}", parent_id=f"{1:016x}", name="chat", span_type="CHAT_MODEL",
                     start_time_ns=start_ns + 100_000_000, end_time_ns=start_ns + 890_000_000,
                     inputs={"messages": [{"role": "user", "content": question}]},
                     outputs={"choices": [{"message": {"role": "assistant", "content": answer}}]}),
            ]  # fmt: skip
            assessments.append(
                Assessment(
                    assessment_id=f"a-{uuid.uuid4().hex}", trace=trace, name="expected_facts", kind="expectation",
                    value=["20 sessions", "co-pay" if i % 3 else "deductible"], source_type="HUMAN",
                    source_id="expert", create_time=now, last_update_time=now,
                )
            )  # fmt: skip
        Span.objects.bulk_create(spans)
        Assessment.objects.bulk_create(assessments)


class Timers:
    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.scorer_cpu = 0.0
        self.lock = threading.Lock()

    def timed(self, name: str, function: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - started

        return wrapper

    def cpu(self, function: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                spent = time.thread_time() - started
                with self.lock:
                    self.scorer_cpu += spent

        return wrapper


def main() -> None:
    with fresh_database(f"bench_evaluate_{os.getpid()}"):
        started = time.perf_counter()
        build(TRACES)
        print(f"built {TRACES} traces in {time.perf_counter() - started:.1f} s", flush=True)

        from evaluation import runs
        from evaluation.scorers import runner

        timers = Timers()
        runs.build_items = timers.timed("build arguments (load, conversation, Trace.from_dict)", runs.build_items)
        runs.score_items = timers.timed("call scorers (pool, Feedback conversion)", runs.score_items)
        runs.write_results = timers.timed("write Feedback (bulk insert)", runs.write_results)
        runner._call = timers.cpu(runner._call)
        runs.load_catalogue()  # import MLflow and the scorer module before timing, as a warm worker has

        started = time.perf_counter()
        run = runs.start_evaluation_run(
            scorer_names=SCORERS, filter_string="", experiment="bench-evaluate", enqueue=False
        )
        run = runs.execute_run(run.pk)
        elapsed = time.perf_counter() - started
        assert run is not None and run.status == "finished", run and run.error
        from traces.models import Assessment

        written = Assessment.objects.filter(source_type="CODE").count()
        errors = Assessment.objects.filter(source_type="CODE", error__isnull=False).count()
        rate = TRACES / elapsed
        ours = elapsed - timers.scorer_cpu
        in_scorers = f"{timers.scorer_cpu:.1f} s ({timers.scorer_cpu / elapsed:.0%})"
        rows = [
            ("traces × scorers", f"{TRACES:,} × {len(SCORERS)}", ""),
            ("wall time", f"{elapsed:.1f} s", ""),
            ("traces/s", f"{rate:,.0f}", "≥ 500"),
            ("Feedback written (errors)", f"{written:,} ({errors})", f"{TRACES * len(SCORERS):,} (0)"),
            ("time in the scorers (CPU in calls)", in_scorers, ""),
            ("time in our code", f"{ours:.1f} s ({ours / elapsed:.0%})", ""),
        ]
        rows += [(f"  {name}", f"{seconds:.1f} s", "") for name, seconds in timers.wall.items()]
        rows += [(f"metric {name}", f"{value:.3f}", "") for name, value in sorted(run.metrics.items())]
        table(f"Evaluation run: {TRACES:,} stored traces × {len(SCORERS)} code scorers (PostgreSQL)", rows)
        if rate < 500:
            raise SystemExit(f"below target: {rate:.0f} traces/s")


if __name__ == "__main__":
    main()
