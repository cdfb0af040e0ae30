"""Property-based: malformed trace files never crash ``import_traces``.

Real MLflow/OTLP files from tests/data are mutated (values swapped for nasty ones: NUL text,
numbers past BIGINT, values nested hundreds of levels deep, far-away times, wrong types;
keys dropped or added; the bytes truncated or corrupted) and imported. Whatever comes in,
the command either imports the file or prints one ``error: PATH: reason`` line and writes
nothing from it; it never shows a traceback, and never needs its last-resort "internal
error" line.

CI (``CI=true``) runs 10,000 documents, derandomized so a failure reproduces; a local run
takes ``FUZZ_EXAMPLES`` (default 300) random ones.
"""

from __future__ import annotations

import copy
import json
import os
import random
from pathlib import Path
from typing import Any

import orjson
import pytest
from django.db import transaction
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.traces.test_import_traces import DATA_DIR, counts, run_import
from traces.models import Trace

pytestmark = pytest.mark.django_db

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
EXAMPLES = 10_000 if IN_CI else int(os.environ.get("FUZZ_EXAMPLES", "300"))
PAGE_EXAMPLES = 500 if IN_CI else max(EXAMPLES // 10, 30)
SAMPLES: list[bytes] = [orjson.dumps(json.loads(path.read_text())) for path in sorted(DATA_DIR.glob("*.json"))]
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=IN_CI,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Replaced after json.dumps by brackets nested that deep (json.dumps itself cannot go there).
DEEP_MARKERS = {f"__deep_{n}__": n for n in (127, 128, 129, 254, 255, 256, 600, 1000, 1019, 1024, 1030)}
YEAR_2200_NS = 7_258_118_400 * 10**9
NASTY_SCALARS: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1,
    2**31,
    2**53 + 1,
    2**63 - 1,
    2**63,
    -(2**63),
    -(2**63) - 1,
    2**64 - 1,
    10**30,
    -(10**30),
    1e308,
    -1e308,
    0.5,
    "",
    " ",
    "\u0000",
    "a\u0000b",
    "\ufffd",
    "\u202e",
    "😀",
    "\n",
    "0",
    "-1",
    "1" * 5000,
    "9" * 30,
    "0x",
    "0xZZ",
    "AAAAAAAAAAA=",
    "AuIgoJWo7BM=",
    "02e220a095a8ec13",
    "5b8efff798038103d269b633813fc60c",
    "tr-" + "a" * 100,
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+14:00",
    "1969-12-31T23:59:59Z",
    "2200-01-01T00:00:00Z",
    "2026-11-23T07:22:45.959Z",
    "2026-13-45T99:99:99Z",
    "1e400",
    "0.134s",
    "-5s",
    "1" * 400 + "s",
    "NaN",
    "null",
    "[]",
    "{}",
    '"\\u0000"',
    "[" * 300 + "]" * 300,
    "[" * 1024 + "]" * 1024,
    "{" * 5,
    "STATUS_CODE_ERROR",
    "OK",
    "ERROR",
    "IN_PROGRESS",
    "CHAT_MODEL",
    "RETRIEVER",
    YEAR_2200_NS,
    YEAR_2200_NS - 1,
    str(YEAR_2200_NS),
    1795418565959869148,
    "1795418565959869148",
    *DEEP_MARKERS,
]


JSON_VALUES = st.recursive(
    st.one_of(
        st.sampled_from(NASTY_SCALARS),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=8), children, max_size=4),
    ),
    max_leaves=6,
)
KEYS = st.sampled_from(["parent_span_id", "parentSpanId", "x", "status", "request_time", "assessments", "spans"])
NASTY_STRINGS = [v for v in NASTY_SCALARS if isinstance(v, str)]
NASTY_NUMBERS = [v for v in NASTY_SCALARS if isinstance(v, (int, float)) and not isinstance(v, bool)]
SPAN_ID_KEYS = ("span_id", "spanId")
PARENT_KEYS = {"span_id": "parent_span_id", "spanId": "parentSpanId"}


def _containers(document: Any) -> list[Any]:
    """Every dict and list inside ``document`` (iteratively)."""
    found, stack = [], [document]
    while stack:
        node = stack.pop()
        if isinstance(node, (dict, list)):
            found.append(node)
            stack.extend(node.values() if isinstance(node, dict) else node)
    return found


def _leaves(document: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) holding a scalar."""
    return [
        (node, key)
        for node in _containers(document)
        for key in (node if isinstance(node, dict) else range(len(node)))
        if not isinstance(node[key], (dict, list))
    ]


def tweak(value: Any, rng: random.Random) -> Any:
    """A nasty value of the same kind, often close to the original (so the rest of the file stays valid)."""
    if isinstance(value, str):
        decoded = _decoded(value)
        if isinstance(decoded, (dict, list)) and rng.random() < 0.5:  # a JSON-encoded attribute: change inside
            mutate(decoded, rng, rng.choice(NASTY_SCALARS), "x")
            return json.dumps(decoded)
        return rng.choice([value + "\u0000", "\u0000" + value, value[:3] + "\u0000" + value[3:], *NASTY_STRINGS])
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return rng.choice([value + 2**63, -value, value * 1000, value // 1000, *NASTY_NUMBERS])
    return rng.choice(NASTY_SCALARS)


def _decoded(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def reparent(document: Any, rng: random.Random) -> bool:
    """Point a span's parent at itself or another span of the document (parent loops)."""
    spans = [n for n in _containers(document) if isinstance(n, dict) and any(k in n for k in SPAN_ID_KEYS)]
    if not spans:
        return False
    child, parent = rng.choice(spans), rng.choice(spans)
    for key in SPAN_ID_KEYS:
        if key in child and key in parent:
            child[PARENT_KEYS[key]] = parent[key]
    return True


def mutate(document: Any, rng: random.Random, value: Any, key: str) -> None:
    """One change somewhere in ``document``: tweak a leaf, replace, delete, add, re-encode or retype a member."""
    operation = rng.choice(["tweak", "tweak", "tweak", "reparent", "replace", "delete", "add", "encode", "retype"])
    if operation == "tweak" and (leaves := _leaves(document)):
        node, member = rng.choice(leaves)
        node[member] = tweak(node[member], rng)
        return
    if operation == "reparent" and reparent(document, rng):
        return
    target = rng.choice(_containers(document))
    if isinstance(target, dict):
        if not target or operation == "add":
            target[key] = value
            return
        member = rng.choice(list(target))
        if operation == "delete":
            del target[member]
        elif operation == "encode":
            target[member] = json.dumps(value)  # MLflow 3 JSON-encodes attribute values
        elif operation == "retype":
            target[member] = [target[member]] if rng.random() < 0.5 else {"value": target[member]}
        else:
            target[member] = value
    else:
        if not target or operation == "add":
            target.append(value)
            return
        index = rng.randrange(len(target))
        if operation == "delete":
            del target[index]
        elif operation == "retype":
            target.append(copy.deepcopy(target[index]))  # a duplicate (same span id twice, …)
        elif operation == "encode":
            target[index] = json.dumps(value)
        else:
            target[index] = value


def encode(documents: list[Any], rng: random.Random, layout: str) -> bytes:
    if layout == "jsonl":
        text = "\n".join(json.dumps(d) for d in documents) + "\n"
    elif layout == "list":
        text = json.dumps(documents)
    else:
        text = json.dumps(documents[0], indent=1 if layout == "pretty" else None)
    for marker, depth in DEEP_MARKERS.items():
        text = text.replace(f'"{marker}"', "[" * depth + "]" * depth)
    content = text.encode()
    if layout == "truncated":
        content = content[: rng.randrange(len(content) + 1)]
    elif layout == "corrupted" and content:
        position = rng.randrange(len(content))
        content = content[:position] + bytes([rng.randrange(256)]) + content[position + 1 :]
    return content


@st.composite
def malformed_files(draw: st.DrawFn) -> bytes:
    rng = random.Random(draw(st.integers(min_value=0, max_value=2**32)))
    documents = [orjson.loads(draw(st.sampled_from(SAMPLES))) for _ in range(draw(st.integers(1, 3)))]
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        target = rng.choice(documents)
        mutate(target, rng, draw(JSON_VALUES), draw(KEYS))
    layout = draw(st.sampled_from(["one", "pretty", "jsonl", "list", "truncated", "corrupted"]))
    return encode(documents, rng, layout)


def import_in_a_savepoint(tmp_path: Path, content: bytes, check: Any = None) -> None:
    """Import one generated file and check the outcome; the database is rolled back afterwards."""
    path = tmp_path / "generated.jsonl"
    path.write_bytes(content)
    with transaction.atomic():
        before = counts()
        run = run_import(path)
        lines = run.err.splitlines()
        assert "Traceback" not in run.err
        assert "internal error" not in run.err, run.err
        assert all(line.startswith(("error: ", "warning: ")) for line in lines), run.err
        errors = [line for line in lines if line.startswith("error: ")]
        if run.code:
            assert run.code == 1
            assert len(errors) == 1 and errors[0].startswith(f"error: {path}: "), run.err
            assert counts() == before  # nothing written from a refused file
        else:
            assert errors == []
            if check is not None:
                check()
        transaction.set_rollback(True)


@FUZZ_SETTINGS
@given(content=malformed_files())
def test_malformed_files_never_crash_the_importer(tmp_path: Path, content: bytes) -> None:
    import_in_a_savepoint(tmp_path, content)


@settings(FUZZ_SETTINGS, max_examples=PAGE_EXAMPLES)
@given(content=malformed_files())
def test_whatever_is_imported_can_be_shown(tmp_path: Path, admin_user, content: bytes) -> None:
    """A file the importer accepts never breaks the explorer or the trace page (item: year-10000 times)."""
    client = Client()
    client.force_login(admin_user)

    def pages_open() -> None:
        assert client.get("/traces/").status_code == 200
        for trace in Trace.objects.all()[:3]:
            assert client.get(trace.get_absolute_url()).status_code == 200

    import_in_a_savepoint(tmp_path, content, check=pages_open)


def test_the_generator_makes_files_the_importer_refuses_and_files_it_takes(tmp_path: Path) -> None:
    """The property above only means something if both outcomes happen often."""
    outcomes = {"imported": 0, "refused": 0}

    @settings(FUZZ_SETTINGS, max_examples=120, derandomize=True)
    @given(content=malformed_files())
    def tally(content: bytes) -> None:
        path = tmp_path / "sample.json"
        path.write_bytes(content)
        with transaction.atomic():
            outcomes["refused" if run_import(path).code else "imported"] += 1
            transaction.set_rollback(True)

    tally()
    assert outcomes["imported"] >= 20, outcomes
    assert outcomes["refused"] >= 20, outcomes
