"""OTLP/HTTP ingest: 8 exporters post protobuf span batches to gunicorn on PostgreSQL; nothing may be lost.

Each client plays an application whose tracer sends spans the way OpenTelemetry's
BatchSpanProcessor does: as they end, in batches of a fixed size, so children come before their
root and most traces are split over several requests. The traces of a client overlap in time
(a new one starts before the last has ended), so a batch mixes the spans of several traces.
The bodies are encoded before the clock starts: an exporter runs on the application's machine.
The machine is shared, so the table also gives the CPU the run used (app, database, clients) and
the rate that CPU would allow with both cores free, next to the load average.

Targets (2-core machine): ≥ 500 traces/s over a burst of 10,000 ten-span traces, 0 lost
(the stock MLflow server managed 6–31 traces/s here and lost 26–37% of 1,000-trace bursts).
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from _common import fresh_database, gunicorn, median, percentile, table

N_TRACES = int(os.environ.get("BENCH_OTLP_TRACES", "10000"))
SPANS = 10
CLIENTS = 8
BATCH_SPANS = int(os.environ.get("BENCH_OTLP_BATCH", "64"))  # spans per export request
IN_FLIGHT = 12  # traces of one client running at the same time
WORKERS = int(os.environ.get("BENCH_WORKERS", "4"))
PAYLOAD = "x" * 380  # inputs + outputs + attributes make ~1 KB per span


def _span(trace_id: bytes, span_id: int, parent_id: int, name: str, start: int, end: int, root: bool):
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

    def attribute(key: str, value: str) -> KeyValue:
        return KeyValue(key=key, value=AnyValue(string_value=value))

    attributes = [
        attribute("mlflow.traceRequestId", json.dumps(f"tr-{trace_id.hex()}")),
        attribute("mlflow.spanType", json.dumps("AGENT" if root else "LLM")),
        attribute("mlflow.spanInputs", json.dumps({"question": f"{name} {PAYLOAD}"})),
        attribute("mlflow.spanOutputs", json.dumps({"answer": PAYLOAD})),
    ]
    if root:
        attributes += [attribute("mlflow.traceTag.env", "bench"), attribute("session.id", f"s-{span_id % 97}")]
    return Span(
        trace_id=trace_id,
        span_id=span_id.to_bytes(8, "big"),
        parent_span_id=parent_id.to_bytes(8, "big") if parent_id else b"",
        name=name,
        kind=Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=start,
        end_time_unix_nano=end,
        attributes=attributes,
        status=Status(code=Status.STATUS_CODE_OK),
    )


def _trace_spans(number: int, start: int) -> list[tuple[int, object]]:
    """(end time, span) of one 10-span trace: root → 9 children, every third one nested in the previous."""
    trace_id = (number + 1).to_bytes(16, "big")
    base = (number + 1) * 100
    root_end = start + 100_000_000
    spans = [(root_end, _span(trace_id, base, 0, "agent", start, root_end, True))]
    for i in range(1, SPANS):
        parent = base + i - 1 if i % 3 == 2 else base
        child_start = start + i * 9_000_000
        child_end = child_start + (12_000_000 if i % 3 == 1 else 6_000_000)
        spans.append((child_end, _span(trace_id, base + i, parent, f"step-{i}", child_start, child_end, False)))
    return spans


def build_requests(client: int) -> tuple[list[bytes], int]:
    """One client's export requests: its traces' spans in end order, cut into BATCH_SPANS batches."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans

    numbers = range(client, N_TRACES, CLIENTS)
    gap = 100_000_000 // IN_FLIGHT
    now = time.time_ns() - 3600 * 10**9
    spans = [item for k, n in enumerate(numbers) for item in _trace_spans(n, now + k * gap)]
    spans.sort(key=lambda item: item[0])
    resource = Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=f"app-{client}"))])
    bodies = []
    for first in range(0, len(spans), BATCH_SPANS):
        batch = [span for _, span in spans[first : first + BATCH_SPANS]]
        scope = ScopeSpans(scope=InstrumentationScope(name="bench"), spans=batch)
        message = ExportTraceServiceRequest(resource_spans=[ResourceSpans(resource=resource, scope_spans=[scope])])
        bodies.append(message.SerializeToString())
    return bodies, len(numbers)


def split_counts(bodies: list[bytes]) -> float:
    """How many requests the average trace's spans are spread over."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    requests_per_trace: dict[bytes, int] = {}
    for body in bodies:
        message = ExportTraceServiceRequest.FromString(body)
        for trace_id in {s.trace_id for s in message.resource_spans[0].scope_spans[0].spans}:
            requests_per_trace[trace_id] = requests_per_trace.get(trace_id, 0) + 1
    return sum(requests_per_trace.values()) / len(requests_per_trace)


def run_clients(base: str, token: str, work: list[list[bytes]]) -> tuple[float, list[float], list[str]]:
    url = urlsplit(base)
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    headers = {
        "Content-Type": "application/x-protobuf",
        "Authorization": f"Bearer {token}",
        "x-mlflow-experiment-id": "1",
    }

    def client(bodies: list[bytes]) -> None:
        mine = []
        for body in bodies:
            for attempt in range(5):  # exporters retry 429/502/503/504 with backoff
                connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
                start = time.perf_counter()
                connection.request("POST", "/v1/traces", body, headers)
                response = connection.getresponse()
                content = response.read()
                mine.append((time.perf_counter() - start) * 1000)
                connection.close()
                if response.status == 200:
                    break
                if response.status not in (429, 502, 503, 504) or attempt == 4:
                    with lock:
                        failures.append(f"{response.status}: {content[:200]!r}")
                    break
                time.sleep(0.1 * 2**attempt)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(bodies,)) for bodies in work]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start, latencies, failures


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _gunicorn_pids(base: str) -> list[int]:
    """The gunicorn processes serving ``base`` (master and workers), found by their command line."""
    bind = base.removeprefix("http://")
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"reviewapp.wsgi" in command and bind.encode() in command:
                pids.append(int(entry.name))
    return pids


def _backend_pids() -> list[int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [pid for (pid,) in cursor.fetchall()]


def main() -> None:
    with fresh_database("bench_otlp_ingest") as url:
        from django.contrib.auth.models import User
        from django.db import connections

        from traces.models import Experiment, Span, Trace
        from traces.tokens import create_api_token

        admin = User.objects.create_user("bench-admin", is_staff=True, is_superuser=True)
        token = create_api_token(user=admin, name="bench exporter")[1]
        Experiment.objects.create(name="bench", mlflow_experiment_id="1")
        connections.close_all()
        built = [build_requests(client) for client in range(CLIENTS)]
        work = [bodies for bodies, _ in built]
        all_bodies = [body for bodies in work for body in bodies]
        spread = split_counts(all_bodies)
        sent_spans = N_TRACES * SPANS
        load_before = os.getloadavg()
        with gunicorn(url, workers=WORKERS) as base:
            app_pids = _gunicorn_pids(base)
            app_before = sum(map(_cpu_seconds, app_pids))
            client_before = time.process_time()
            seconds, latencies, failures = run_clients(base, token, work)
            client_cpu = time.process_time() - client_before
            app_cpu = sum(map(_cpu_seconds, app_pids)) - app_before
            db_cpu = sum(map(_cpu_seconds, _backend_pids()))  # new connections, opened by the burst
        load_after = os.getloadavg()
        traces = Trace.objects.count()
        spans = Span.objects.count()
        finished = Trace.objects.filter(state="OK").count()
        counted = sum(Trace.objects.values_list("span_count", flat=True))
        lost_traces, lost_spans = N_TRACES - finished, sent_spans - spans
        body_kb = sum(map(len, all_bodies)) / len(all_bodies) / 1024
        rows = [
            ("traces sent (10 spans each, ~1 KB per span)", f"{N_TRACES:,}", "10,000"),
            (
                f"requests ({CLIENTS} clients, {BATCH_SPANS} spans each, ~{body_kb:.0f} KB protobuf)",
                f"{len(all_bodies):,}",
                "",
            ),
            ("requests a trace is split over (mean)", f"{spread:.1f}", "> 1"),
            ("wall time", f"{seconds:.1f} s", ""),
            ("traces/s", f"{N_TRACES / seconds:,.0f}", "≥ 500"),
            ("spans/s", f"{sent_spans / seconds:,.0f}", ""),
            ("request latency p50", f"{median(latencies):.0f} ms", ""),
            ("request latency p95", f"{percentile(latencies, 95):.0f} ms", ""),
            ("requests refused or failed", str(len(failures)), "0"),
            ("traces in the database / complete (state OK)", f"{traces:,} / {finished:,}", f"{N_TRACES:,}"),
            ("spans in the database / sum of span_count", f"{spans:,} / {counted:,}", f"{sent_spans:,}"),
            ("lost traces, lost spans", f"{lost_traces}, {lost_spans}", "0, 0"),
            ("gunicorn sync workers", str(WORKERS), ""),
            (
                "CPU used: app (gunicorn) / database / clients",
                f"{app_cpu:.1f} s / {db_cpu:.1f} s / {client_cpu:.1f} s",
                "",
            ),
            (
                "traces/s if this run had the 2 cores to itself (traces / (CPU s / 2))",
                f"{N_TRACES / ((app_cpu + db_cpu + client_cpu) / 2):,.0f}",
                "≥ 500",
            ),
            ("load average (1 min) before → after", f"{load_before[0]:.1f} → {load_after[0]:.1f}", ""),
        ]
        table("OTLP/HTTP ingest (PostgreSQL, gunicorn)", rows)
        if failures:
            print("first failures:", *failures[:5], sep="\n  ")
        if lost_traces or lost_spans or traces != N_TRACES or counted != sent_spans:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
