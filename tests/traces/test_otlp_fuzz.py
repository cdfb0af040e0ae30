"""Property-based: whatever body reaches ``POST /v1/traces``, the answer is 2xx or 4xx, never a 5xx.

Bodies are real SDK spans as OTLP/JSON with values swapped for nasty ones (NUL text, numbers past
int64, far-away times, wrong types), real protobuf with bytes flipped or cut, random bytes, and
random compression headers. A 200 answer is a valid ``ExportTraceServiceResponse``, and every span
it did not refuse is stored exactly once.

CI (``CI=true``) runs 2,000 bodies, derandomized; a local run takes ``FUZZ_EXAMPLES`` (default 200).
"""

from __future__ import annotations

import gzip
import json
import os
import random
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.traces.test_import_fuzz import _leaves, tweak
from traces.models import Experiment, Span, Trace
from traces.tokens import create_api_token

from .otlp_helpers import json_document, protobuf_body, record_rag_trace

pytestmark = pytest.mark.django_db

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
EXAMPLES = 2_000 if IN_CI else int(os.environ.get("FUZZ_EXAMPLES", "200"))
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=IN_CI,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
SPANS = record_rag_trace()
PROTOBUF = protobuf_body(SPANS)
DOCUMENT = json_document(SPANS, hex_ids=True)


def mutated_json(seed: int, changes: int) -> bytes:
    rng = random.Random(seed)
    document = json.loads(json.dumps(DOCUMENT))
    leaves = _leaves(document)
    for _ in range(changes):
        node, key = rng.choice(leaves)
        node[key] = tweak(node[key], rng)
    return json.dumps(document).encode()


def mutated_protobuf(seed: int, flips: int) -> bytes:
    rng = random.Random(seed)
    body = bytearray(PROTOBUF)
    for _ in range(flips):
        body[rng.randrange(len(body))] = rng.randrange(256)
    return bytes(body[: rng.randrange(len(body) + 1)] if rng.random() < 0.2 else body)


BODIES = st.one_of(
    st.tuples(st.just("application/json"), st.builds(mutated_json, st.integers(0, 2**32), st.integers(1, 4))),
    st.tuples(st.just("application/x-protobuf"), st.builds(mutated_protobuf, st.integers(0, 2**32), st.integers(1, 6))),
    st.tuples(st.sampled_from(["application/json", "application/x-protobuf"]), st.binary(max_size=2000)),
    st.tuples(
        st.just("application/json"),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
            lambda children: (
                st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
            ),
            max_leaves=20,
        ).map(lambda value: json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [value]}]}]}).encode()),
    ),
)
ENCODINGS = st.sampled_from(["", "identity", "gzip", "deflate", "gzip-garbage"])


@pytest.fixture
def secret(admin_user) -> str:
    Experiment.objects.create(name="Fuzz", mlflow_experiment_id="1")
    return create_api_token(user=admin_user, name="fuzz")[1]


@FUZZ_SETTINGS
@given(body=BODIES, encoding=ENCODINGS)
def test_any_body_gets_a_2xx_or_4xx_answer(client, secret, body, encoding):
    content_type, data = body
    headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}", "HTTP_X_MLFLOW_EXPERIMENT_ID": "1"}
    if encoding == "gzip":
        data = gzip.compress(data)
    elif encoding == "deflate":
        data = zlib.compress(data)
    if encoding:
        headers["HTTP_CONTENT_ENCODING"] = "gzip" if encoding == "gzip-garbage" else encoding
    before = Span.objects.count()
    response = client.post("/v1/traces", data or b"{}", content_type=content_type, **headers)
    assert response.status_code < 500, response.content
    if response.status_code != 200:
        assert response.json()["error"]
        assert Span.objects.count() == before
    elif content_type == "application/x-protobuf":
        ExportTraceServiceResponse.FromString(response.content)
    else:
        assert isinstance(response.json(), dict)
    for trace in Trace.objects.all():
        assert trace.span_count == trace.spans.count()
