"""20 reviewers claim and submit against a running server (gunicorn, PostgreSQL) for 60 s.

Prints throughput and p50/p95/p99 of claim and submit; checks that no slot was handed out twice,
no item got more reviews than required, and no submitted answer was lost. Target: p95 < 100 ms.
"""

from __future__ import annotations

import http.cookiejar
import os
import random
import re
import sys
import threading
import time
import urllib.parse
import urllib.request

from _common import fresh_database, gunicorn, percentile, table

REVIEWERS = 20
ITEMS = 1500
PER_ITEM = 2
SECONDS = float(os.environ.get("BENCH_SECONDS", "60"))
# Seconds a simulated reviewer spends reading an item before answering (0 = a stress test).
THINK = float(os.environ.get("BENCH_THINK_SECONDS", "1"))
PASSWORD = "load-test-pass-123"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


def setup_session() -> int:
    from django.contrib.auth.models import User

    from labeling import services
    from labeling.models import LabelSchema
    from traces.demo import build_trace
    from traces.ingest import parse_document, resolve_experiment, store_traces
    from traces.models import Trace

    experiment = resolve_experiment("load")
    records = [r for seed in range(ITEMS) for r in parse_document(build_trace(n_spans=6, payload_bytes=600, seed=seed))]
    for start in range(0, len(records), 500):
        store_traces(records[start : start + 500], experiment=experiment)
    reviewers = [User.objects.create_user(f"load{i:02d}", password=PASSWORD) for i in range(REVIEWERS)]
    schema = services.save_label_schema(
        schema=LabelSchema(name="correct", type="feedback", title="Correct?", input_type="pass_fail")
    )
    session = services.create_labeling_session(name="load", schemas=[schema], reviewers=reviewers)
    session.reviewers_per_item = PER_ITEM
    session.save()
    services.add_traces_to_session(session=session, traces=Trace.objects.filter(experiment=experiment))
    return session.pk


class Reviewer:
    def __init__(self, base: str, username: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), NoRedirect)
        self.username = username

    def csrf(self) -> str:
        return next(c.value for c in self.jar if c.name == "csrftoken")

    def request(self, path: str, data: dict[str, str] | None = None) -> tuple[int, str, str]:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(self.base + path, data=body)
        if data is not None:
            req.add_header("X-CSRFToken", self.csrf())
            req.add_header("Referer", self.base + path)
        try:
            with self.opener.open(req, timeout=30) as response:
                return response.status, response.headers.get("Location", ""), response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("Location", ""), exc.read().decode(errors="replace")

    def login(self) -> None:
        self.request("/login/")
        status, _, _ = self.request("/login/", {"username": self.username, "password": PASSWORD})
        assert status == 302, f"login failed for {self.username}: {status}"


def run_load(base: str, session_pk: int) -> dict[str, list]:
    results: dict[str, list] = {"claim": [], "submit": [], "handed": [], "submitted": [], "errors": []}
    lock = threading.Lock()
    ready = threading.Barrier(REVIEWERS + 1)
    item_re = re.compile(rf"/review/{session_pk}/items/(\d+)/")
    deadline = [0.0]
    go = threading.Event()

    def work(index: int) -> None:
        reviewer = Reviewer(base, f"load{index:02d}")
        reviewer.login()
        reviewer.request(f"/review/{session_pk}/mine/")  # warm-up: every worker has served a page
        ready.wait()
        go.wait()
        while time.perf_counter() < deadline[0]:
            start = time.perf_counter()
            status, location, _ = reviewer.request(f"/review/{session_pk}/")
            claim_ms = (time.perf_counter() - start) * 1000
            match = item_re.search(location)
            if status != 302 or not match:
                break  # nothing left for this reviewer
            item = int(match.group(1))
            if THINK:
                time.sleep(THINK * (0.5 + random.random()))
            start = time.perf_counter()
            status, _, _ = reviewer.request(f"/review/{session_pk}/items/{item}/submit/", {"q-correct": "pass"})
            submit_ms = (time.perf_counter() - start) * 1000
            with lock:
                results["claim"].append(claim_ms)
                results["handed"].append((item, index))
                if status == 302:
                    results["submit"].append(submit_ms)
                    results["submitted"].append((item, index))
                else:
                    results["errors"].append(status)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(REVIEWERS)]
    for thread in threads:
        thread.start()
    ready.wait()  # logins and warm-up are not measured
    deadline[0] = time.perf_counter() + SECONDS
    started = time.perf_counter()
    go.set()
    for thread in threads:
        thread.join()
    results["elapsed"] = [time.perf_counter() - started]
    return results


def check_database(session_pk: int, results: dict[str, list]) -> list[tuple[str, str, str]]:
    from django.db.models import Count

    from labeling.models import ItemReview, ReviewItem
    from traces.models import Assessment

    over = ReviewItem.objects.filter(session_id=session_pk, submitted_count__gt=PER_ITEM).count()
    per_item = (
        ItemReview.objects.filter(item__session_id=session_pk, status="submitted")
        .values("item")
        .annotate(n=Count("pk"))
        .filter(n__gt=PER_ITEM)
        .count()
    )
    stored = Assessment.objects.filter(trace__review_item__session_id=session_pk, source_type="HUMAN").count()
    double = len(results["handed"]) - len(set(results["handed"]))
    return [
        ("slots handed to the same reviewer twice", str(double), "0"),
        ("items with more reviews than required", str(max(over, per_item)), "0"),
        ("answers stored / submits accepted", f"{stored} / {len(results['submitted'])}", "equal (nothing lost)"),
        ("submit errors", str(len(results["errors"])), "0"),
    ]


def main() -> int:
    with fresh_database("reviewapp_bench_load") as url:
        session_pk = setup_session()
        from django.db import connections

        connections.close_all()
        with gunicorn(url, workers=int(os.environ.get("BENCH_WORKERS", "4"))) as base:
            results = run_load(base, session_pk)
        elapsed = results["elapsed"][0]
        rows = [
            ("reviewers", str(REVIEWERS), "20"),
            ("duration", f"{elapsed:.0f} s", f"{SECONDS:.0f} s"),
            ("think time per item", f"{THINK:.1f} s (±50%)", ""),
            ("submits accepted", f"{len(results['submitted']):,}", ""),
            ("throughput", f"{len(results['submitted']) / elapsed:.1f} submits/s", ""),
        ]
        for name in ("claim", "submit"):
            values = results[name] or [float("nan")]
            rows += [
                (f"{name} p50", f"{percentile(values, 50):.0f} ms", ""),
                (f"{name} p95", f"{percentile(values, 95):.0f} ms", "< 100 ms"),
                (f"{name} p99", f"{percentile(values, 99):.0f} ms", ""),
            ]
        checks = check_database(session_pk, results)
        table("20 reviewers against gunicorn + PostgreSQL", rows + checks)
        return 0 if all(value.split(" / ")[0] == "0" for _, value, _ in checks[:2]) and not results["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
