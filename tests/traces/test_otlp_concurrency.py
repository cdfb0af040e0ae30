"""Concurrent OTLP requests carrying spans of the same new traces: nothing twice, nothing lost.

Real HTTP requests against the live test server, started together from several threads. On
PostgreSQL (``DATABASE_URL=postgres://…``) the requests really overlap in the database, which is
what the trace-row locks and ``ON CONFLICT DO NOTHING`` are for; on SQLite they take turns.
"""

from __future__ import annotations

import random
import threading

import pytest
import requests
from django.contrib.auth.models import User

from traces.models import Experiment, Span, Trace
from traces.tokens import create_api_token

from .otlp_helpers import protobuf_body, record_rag_trace, span_id_of, trace_id_of

THREADS = 8


@pytest.fixture
def secret(transactional_db) -> str:
    admin = User.objects.create_user("concurrent-admin", is_staff=True)
    Experiment.objects.create(name="Concurrent", mlflow_experiment_id="9")
    return create_api_token(user=admin, name="concurrent")[1]


def _post_together(url: str, secret: str, bodies: list[bytes]) -> list[int]:
    """Post ``bodies`` from THREADS threads that start at the same moment; the status codes."""
    barrier = threading.Barrier(THREADS)
    statuses: list[int] = []
    lock = threading.Lock()
    headers = {
        "Authorization": f"Bearer {secret}",
        "x-mlflow-experiment-id": "9",
        "Content-Type": "application/x-protobuf",
    }

    def worker(mine: list[bytes]) -> None:
        with requests.Session() as session:
            barrier.wait()
            for body in mine:
                status = session.post(url, data=body, headers=headers, timeout=60).status_code
                with lock:
                    statuses.append(status)

    threads = [threading.Thread(target=worker, args=(bodies[i::THREADS],)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def test_concurrent_requests_for_the_same_new_traces(live_server, secret):
    rng = random.Random(7)
    traces = [record_rag_trace(question=f"q{n}") for n in range(12)]
    bodies = []
    for spans in traces:
        # every span twice (a retry racing the original), in pieces, children and root in any order
        pieces = [spans[:2], spans[2:], spans[1:3], [spans[3]], spans[:1]]
        bodies += [protobuf_body(piece) for piece in pieces]
    # several traces per request, too, so two requests lock overlapping sets of new traces
    bodies += [protobuf_body(traces[n][:3] + traces[n + 1][1:]) for n in range(0, 11, 2)]
    rng.shuffle(bodies)
    statuses = _post_together(live_server.url + "/v1/traces", secret, bodies)
    assert statuses == [200] * len(bodies)
    assert Trace.objects.count() == len(traces)
    assert Span.objects.count() == 4 * len(traces)
    for spans in traces:
        trace = Trace.objects.get(trace_id=trace_id_of(spans))
        assert trace.state == "OK" and trace.name == "agent" and trace.span_count == 4
        assert set(trace.spans.values_list("span_id", flat=True)) == {span_id_of(s) for s in spans}


def test_many_requests_each_with_one_span_of_one_trace(live_server, secret):
    spans = record_rag_trace()
    bodies = [protobuf_body([span]) for span in spans] * 4
    statuses = _post_together(live_server.url + "/v1/traces", secret, bodies)
    assert statuses == [200] * len(bodies)
    trace = Trace.objects.get()
    assert trace.span_count == 4 and Span.objects.count() == 4 and trace.state == "OK"


def test_a_trace_another_request_is_creating_is_waited_for_and_joined(transactional_db):
    """PostgreSQL: the other request's new trace row commits while this one waits on it; this one then
    locks that row (it was not in its first snapshot) and adds its spans to it."""
    import time

    import psycopg
    from django.db import connection

    from traces.ingest.live import LiveResult, group_spans, store_live_spans
    from traces.ingest.otlp_http import PROTOBUF, decode_request

    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL only (SQLite writers take turns on the whole file)")
    experiment = Experiment.objects.create(name="Race", mlflow_experiment_id="r")
    spans = record_rag_trace()
    settings = connection.settings_dict
    other = psycopg.connect(
        dbname=settings["NAME"], user=settings["USER"], host=settings["HOST"], port=settings["PORT"] or 5432
    )
    other.execute(
        "INSERT INTO traces_trace (trace_id, name, state, request_time, request_preview, response_preview, "
        "client_request_id, model_id, tags, trace_metadata, span_count, experiment_id, created_at, updated_at) "
        "VALUES (%s, '', 'IN_PROGRESS', now(), '', '', '', '', '{}', '{}', 0, %s, now(), now())",
        [trace_id_of(spans), experiment.pk],
    )
    outcome: list[LiveResult] = []

    def store() -> None:
        from django.db import connection as thread_connection

        try:
            result = LiveResult()
            groups = group_spans(decode_request(protobuf_body(spans), PROTOBUF), result)
            outcome.append(store_live_spans(groups, experiment=experiment, result=result))
        finally:
            thread_connection.close()

    thread = threading.Thread(target=store)
    thread.start()
    time.sleep(1.0)
    assert thread.is_alive()  # waiting on the other transaction's new row
    other.commit()
    other.close()
    thread.join(timeout=30)
    assert outcome and outcome[0].spans_stored == 4 and outcome[0].traces_completed == 1
    trace = Trace.objects.get()
    assert trace.span_count == 4 and trace.state == "OK" and trace.name == "agent"
