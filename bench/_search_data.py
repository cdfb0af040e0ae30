"""Builds the search benchmark's database: N ten-span traces (~1 KB per span) generated server-side.

The rows are made by ``INSERT … SELECT generate_series`` in chunks on two connections (the machine
has two cores). Paragraph texts come from a seeded pool in a helper table, so every trace's spans
read like prose, share vocabulary with other traces and carry a few per-trace unique tokens.
A marker table records the row count once everything is in; a database without it is rebuilt.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import psycopg

PARAGRAPHS = 4000
# Words a benchmark query looks for, and how often they appear: RARE_WORD is in 2 of the
# 4,000 paragraphs (about 1% of the traces), COMMON_WORD in one paragraph of ten.
RARE_WORD = "heliotrope"
COMMON_WORD = "invoice"
EXPERIMENTS = 8
NAMES = ["chat", "rag_query", "summarize", "classify_ticket", "agent_run", "translate", "extract_fields", "plan_trip"]
VERSIONS = ["", "m-checkout-v1", "m-checkout-v2", "m-support-v3"]
SPAN_TYPES = ["CHAIN", "RETRIEVER", "LLM", "TOOL", "LLM", "PARSER", "EMBEDDING", "LLM", "TOOL", "RERANKER"]
CHUNK = 25_000  # traces per INSERT of spans (250,000 spans, ~250 MB)


def _paragraphs(seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    syllables = ["ka", "lo", "mi", "ra", "tu", "ven", "sol", "dri", "pa", "ne", "qua", "zo", "fi", "gor", "ess", "an"]
    words = ["".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))) for _ in range(1800)]
    words += ["the", "a", "of", "to", "and", "in", "is", "for", "on", "with", "your", "order", "refund", "error"]
    texts = []
    for i in range(PARAGRAPHS):
        chosen = [rng.choice(words) for _ in range(rng.randint(55, 70))]
        if i % 10 == 3:
            chosen[rng.randrange(len(chosen))] = COMMON_WORD
        if i in (1234, 3210):
            chosen[rng.randrange(len(chosen))] = RARE_WORD
        texts.append(" ".join(chosen).capitalize() + ".")
    return texts


# h is a per-trace pseudo-random number; t.id-based so the rows are the same on every build.
TRACES_SQL = """
INSERT INTO traces_trace (trace_id, experiment_id, name, state, request_time, execution_duration_ms,
    request_preview, response_preview, client_request_id, model_id, tags, trace_metadata, span_count,
    created_at, updated_at, source_trace_id)
SELECT 'tr-' || lpad(to_hex(g), 12, '0'),
       (SELECT min(id) FROM traces_experiment) + (h %% %(experiments)s::int),
       (%(names)s::text[])[1 + (h / 7) %% %(n_names)s],
       CASE WHEN h %% 100 < 88 THEN 'OK' WHEN h %% 100 < 98 THEN 'ERROR' ELSE 'IN_PROGRESS' END,
       -- three traces share each second: ties in request_time, in an order unrelated to id
       timestamptz '2026-08-01 00:00:00+00' + (((g * 7919) %% %(n)s::bigint) / 3) * interval '8 seconds',
       50 + (h / 11) %% 20000,
       left(rq.txt, 200), left(rs.txt, 300),
       'cr-' || g, (%(versions)s::text[])[1 + (h / 13) %% 4],
       jsonb_build_object('env', (ARRAY['prod','staging','dev'])[1 + (h / 17) %% 3],
                          'customer', 'cust-' || ((h / 19) %% 1000),
                          'feature', (ARRAY['search','checkout','support','billing','onboarding','chat','ops'])
                                     [1 + (h / 23) %% 7])
         || CASE WHEN (h / 29) %% 20 = 0 THEN '{"flagged": "true"}'::jsonb ELSE '{}'::jsonb END,
       jsonb_build_object('mlflow.trace.user', 'user-' || ((h / 31) %% 5000),
                          'mlflow.trace.session', 'sess-' || (g / 4),
                          'mlflow.modelId', (%(versions)s::text[])[1 + (h / 13) %% 4]),
       10, now(), now(), NULL
FROM (SELECT g::bigint AS g, (g * 2654435761) %% 4294967291 AS h
      FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) g) s
JOIN bench_paragraph rq ON rq.i = h %% %(paragraphs)s::int
JOIN bench_paragraph rs ON rs.i = (h / 3) %% %(paragraphs)s::int
"""

SPANS_SQL = """
INSERT INTO traces_span (trace_id, span_id, parent_id, name, span_type, status_code, status_message,
    start_time_ns, end_time_ns, inputs, outputs, attributes, events)
SELECT t.id, lpad(to_hex(t.id * 16 + s.n), 16, '0'),
       CASE WHEN s.n = 0 THEN '' ELSE lpad(to_hex(t.id * 16), 16, '0') END,
       CASE WHEN s.n = 0 THEN t.name ELSE lower(st.type) || '_' || s.n END,
       st.type,
       CASE WHEN t.state = 'ERROR' AND s.n = 9 THEN 'ERROR' ELSE 'OK' END, '',
       (extract(epoch FROM t.request_time)::bigint * 1000000000) + s.n * 1000000,
       (extract(epoch FROM t.request_time)::bigint * 1000000000) + s.n * 1000000 + 900000,
       jsonb_build_object('messages', jsonb_build_array(jsonb_build_object('role', 'user', 'content', pi.txt))),
       jsonb_build_object('content', po.txt, 'finish_reason', 'stop'),
       jsonb_build_object('mlflow.spanType', st.type, 'model', 'gpt-bench', 'order_ref', 'ord-' || t.id || '-' || s.n,
                          'tokens', 100 + (t.id + s.n) %% 900),
       '[]'::jsonb
FROM traces_trace t
CROSS JOIN generate_series(0, 9) s(n)
JOIN unnest(%(types)s::text[]) WITH ORDINALITY st(type, k) ON st.k = s.n + 1
JOIN bench_paragraph pi ON pi.i = ((t.id * 31 + s.n * 7) * 2654435761) %% 4294967291 %% %(paragraphs)s::int
JOIN bench_paragraph po ON po.i = ((t.id * 37 + s.n * 11) * 2654435761) %% 4294967291 %% %(paragraphs)s::int
WHERE t.id BETWEEN %(lo)s::bigint AND %(hi)s::bigint
"""

# About 10% of traces have a "correctness" feedback (yes/no/partially); 1% of those were corrected
# (the old one is not valid); about 3% have a numeric "helpfulness".
ASSESSMENTS_SQL = """
INSERT INTO traces_assessment (assessment_id, trace_id, name, kind, value, rationale, error, source_type, source_id,
    span_id, overrides, valid, metadata, create_time, last_update_time)
SELECT 'a-' || t.id || '-' || v.n, t.id, v.name, 'feedback', v.value, '', NULL, v.source, 'bench', '', '',
       v.valid, '{}'::jsonb, t.request_time, t.request_time
FROM traces_trace t
CROSS JOIN LATERAL (
    SELECT 1 AS n, 'correctness' AS name,
           to_jsonb((ARRAY['yes','no','partially'])[1 + (t.id / 10) %% 3]) AS value,
           CASE WHEN t.id %% 20 = 0 THEN 'HUMAN' ELSE 'LLM_JUDGE' END AS source, t.id %% 1000 <> 0 AS valid
    WHERE t.id %% 10 = 0
    UNION ALL
    SELECT 2, 'correctness', to_jsonb('yes'::text), 'HUMAN', true WHERE t.id %% 1000 = 0
    UNION ALL
    SELECT 3, 'helpfulness', to_jsonb(1 + t.id %% 5), 'HUMAN', true WHERE t.id %% 33 = 0
) v
WHERE t.id BETWEEN %(lo)s::bigint AND %(hi)s::bigint
"""


def is_complete(url: str, traces: int) -> bool:
    try:
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT traces FROM bench_search_marker").fetchone()
    except psycopg.Error:
        return False
    return row is not None and row[0] == traces


def load(url: str, traces: int, log: Callable[[str], None] = print) -> float:
    """Fill an empty, migrated database; returns seconds taken. Writes the marker row last."""
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_paragraph (i int PRIMARY KEY, txt text NOT NULL)")
        with conn.cursor().copy("COPY bench_paragraph (i, txt) FROM STDIN") as copy:
            for i, text in enumerate(_paragraphs()):
                copy.write_row((i, text))
        conn.execute(
            "INSERT INTO traces_experiment (name, kind, mlflow_experiment_id, description, created_at) "
            "SELECT 'bench-app-' || n, 'traces', (100 + n)::text, '', now() FROM generate_series(0, %s) n",
            [EXPERIMENTS - 1],
        )
        params = {
            "experiments": EXPERIMENTS,
            "names": NAMES,
            "n_names": len(NAMES),
            "versions": VERSIONS,
            "n": traces,
            "paragraphs": PARAGRAPHS,
        }
        for lo in range(1, traces + 1, 200_000):
            conn.execute(TRACES_SQL, {**params, "lo": lo, "hi": min(traces, lo + 199_999)})
        low, high = conn.execute("SELECT min(id), max(id) FROM traces_trace").fetchone()
        log(f"  traces in {time.monotonic() - started:.0f} s")
    chunks = [(lo, min(high, lo + CHUNK - 1)) for lo in range(low, high + 1, CHUNK)]
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("SET synchronous_commit = off")
                while True:
                    with lock:
                        if not chunks or errors:
                            return
                        lo, hi = chunks.pop(0)
                    conn.execute(SPANS_SQL, {"types": SPAN_TYPES, "paragraphs": PARAGRAPHS, "lo": lo, "hi": hi})
                    conn.execute(ASSESSMENTS_SQL, {"lo": lo, "hi": hi})
                    if (hi - low + 1) % (CHUNK * 8) == 0:
                        log(f"  spans up to trace {hi - low + 1:,} at {time.monotonic() - started:.0f} s")
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE bench_paragraph")
        seconds = time.monotonic() - started
        conn.execute("CREATE TABLE bench_search_marker (traces int NOT NULL, load_seconds float NOT NULL)")
        conn.execute("INSERT INTO bench_search_marker VALUES (%s, %s)", [traces, seconds])
    return seconds
