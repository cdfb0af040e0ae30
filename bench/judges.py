"""LLM judges in an evaluation run: 1,000 stored traces × 2 built-in judges against a local OpenAI-compatible
server answering after 50 ms, through the real runner (``start_evaluation_run`` + ``execute_run``) on PostgreSQL.

Prints judge calls per second for ``JUDGE_MAX_CONCURRENCY`` 1, 2, 4 and 8 and checks each against the target
of at least 0.8 × concurrency / latency (≥ 60 calls/s at 4 × 50 ms). The server is the tests' fake endpoint
(tests/evaluation/judges/conftest.py) in a process of its own, so it takes no time from the run's process.
``BENCH_TRACES``, ``BENCH_REPEATS`` (the median is reported), ``BENCH_CONCURRENCY`` ("1,2,4,8") and
``BENCH_DELAY_MS`` change the set-up.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import ROOT, fresh_database, median, table

TRACES = int(os.environ.get("BENCH_TRACES", "1000"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "1"))
CONCURRENCY = [int(c) for c in os.environ.get("BENCH_CONCURRENCY", "1,2,4,8").split(",")]
DELAY_S = int(os.environ.get("BENCH_DELAY_MS", "50")) / 1000
JUDGES = ["Safety", "RelevanceToQuery"]
HERE = Path(__file__).resolve().parent


def start_server() -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [sys.executable, str(HERE / "_fake_judge.py"), "--delay", str(DELAY_S)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    return server, server.stdout.readline().strip()


class Timers:
    """Wall time of the run's steps outside the judge calls (they run one after another, between batches)."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}

    def timed(self, name: str, function: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - started

        return wrapper

    def reset(self) -> None:
        self.wall = dict.fromkeys(self.wall, 0.0)


TIMERS = Timers()


def instrument() -> None:
    from evaluation import runs

    runs.build_items = TIMERS.timed("build arguments", runs.build_items)
    runs.score_items = TIMERS.timed("judge calls (pool)", runs.score_items)
    runs.write_results = TIMERS.timed("write Feedback", runs.write_results)
    runs.summarize_judges = TIMERS.timed("recount judge usage", runs.summarize_judges)
    runs.run_metrics = TIMERS.timed("metrics", runs.run_metrics)


def one_run(concurrency: int) -> tuple[float, object]:
    """One run of every judge over every trace; (seconds in ``execute_run``, its judge usage)."""
    from django.conf import settings

    from evaluation.judges.cost import JudgeUsage
    from evaluation.runs import execute_run, start_evaluation_run

    settings.JUDGE_MAX_CONCURRENCY = concurrency
    run = start_evaluation_run(
        scorer_names=JUDGES, filter_string="", experiment="bench-evaluate", enqueue=False, confirmed=True
    )
    started = time.perf_counter()
    run = execute_run(run.pk)
    elapsed = time.perf_counter() - started
    assert run is not None and run.status == "finished", run and run.error
    usage = JudgeUsage.of(run.judge_usage)
    assert usage is not None
    return elapsed, usage


def main() -> None:
    server, url = start_server()
    try:
        with fresh_database(f"bench_judges_{os.getpid()}"):
            from django.conf import settings

            settings.JUDGE_BASE_URL, settings.JUDGE_MODEL, settings.JUDGE_API_KEY = url, "judge-model", "bench-key"
            settings.JUDGE_TIMEOUT_S, settings.JUDGE_MAX_RETRIES = 60, 0
            from evaluate import build

            started = time.perf_counter()
            build(TRACES)
            print(f"built {TRACES} traces in {time.perf_counter() - started:.1f} s; judge server {url}", flush=True)
            rows, short = [], []
            instrument()
            one_run(4)  # warm: MLflow imported, the catalogue and the judges' prompts built once
            steps: dict[str, list[float]] = {}
            for concurrency in CONCURRENCY:
                rates, per_call = [], []
                for _ in range(REPEATS):
                    TIMERS.reset()
                    elapsed, usage = one_run(concurrency)
                    if concurrency == max(CONCURRENCY):
                        for name, seconds in TIMERS.wall.items():
                            steps.setdefault(name, []).append(seconds / elapsed)
                    expected = TRACES * len(JUDGES)
                    assert (usage.calls, usage.requests, usage.failures) == (expected, expected, 0), usage
                    rates.append(usage.calls / elapsed)
                    per_call.append(usage.mean_latency_ms)
                rate, target = median(rates), 0.8 * concurrency / DELAY_S
                if rate < target:
                    short.append(concurrency)
                rows.append(
                    (
                        f"JUDGE_MAX_CONCURRENCY={concurrency}",
                        f"{rate:,.1f} calls/s ({median(per_call):.0f} ms per call"
                        + (f"; runs {', '.join(f'{r:.1f}' for r in rates)}" if REPEATS > 1 else "")
                        + ")",
                        f"≥ {target:,.0f}",
                    )
                )
            rows += [
                (f"  share of the run at {max(CONCURRENCY)}: {name}", f"{median(shares):.1%}", "")
                for name, shares in steps.items()
            ]
            title = (
                f"Judges: {TRACES:,} traces × {len(JUDGES)} judges = {TRACES * len(JUDGES):,} calls, "
                f"{DELAY_S * 1000:.0f} ms server latency (PostgreSQL, median of {REPEATS})"
            )
            table(title, rows)
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=10)
    if short:
        raise SystemExit(f"below target at JUDGE_MAX_CONCURRENCY {', '.join(map(str, short))}")


if __name__ == "__main__":
    main()
