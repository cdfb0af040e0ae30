"""The importer and ``import_traces``: every MLflow format, idempotency, and every bad input."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command

from tests.factories import make_assessment
from traces.models import Assessment, Experiment, Span, Trace

pytestmark = pytest.mark.django_db
DATA = Path(__file__).resolve().parents[1] / "data"
SAMPLES = sorted(p.name for p in DATA.glob("*.json"))


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("import_traces", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def counts() -> tuple[int, int, int]:
    return Trace.objects.count(), Span.objects.count(), Assessment.objects.count()


@pytest.mark.parametrize("name", SAMPLES)
def test_every_sample_imports(name: str) -> None:
    code, out, err = run(str(DATA / name))
    assert code == 0, err
    assert err == ""
    assert Trace.objects.exists()
    for trace in Trace.objects.all():
        assert trace.trace_id.startswith("tr-")
        assert trace.span_count == trace.spans.count()
        ids = set(trace.spans.values_list("span_id", flat=True))
        assert all(len(i) == 16 and int(i, 16) >= 0 for i in ids)
        parents = {p for p in trace.spans.values_list("parent_id", flat=True) if p}
        assert parents <= ids


def test_v3_file_ids_times_documents_and_assessments() -> None:
    run(str(DATA / "rag_retriever_dict_input.json"))
    raw = json.loads((DATA / "rag_retriever_dict_input.json").read_text())
    trace = Trace.objects.get(trace_id="tr-e72b894394a690a3036177befb430406")
    assert trace.state == "OK" and trace.name == "rag" and trace.span_count == 3
    root = trace.spans.get(parent_id="")
    retriever = trace.spans.get(span_type="RETRIEVER")
    assert retriever.parent_id == root.span_id
    assert root.span_id == "e63c3a0c72367452"  # base64 "5jw6DHI2dFI=" as hex
    assert root.start_time_ns == raw["data"]["spans"][0]["start_time_unix_nano"]  # nanoseconds kept exactly
    assert root.end_time_ns == raw["data"]["spans"][0]["end_time_unix_nano"]
    assert retriever.outputs[0]["page_content"].startswith("MLflow Tracing records")
    assert retriever.outputs[0]["metadata"]["doc_uri"] == "https://docs.example.com/tracing.md"
    assert root.inputs == {"question": "What does MLflow Tracing record?"}
    by_id = {a.assessment_id: a for a in trace.assessments.all()}
    correctness = by_id["a-71c7eab07fea49718e7017d46a385880"]
    assert correctness.kind == "feedback" and correctness.value is True
    assert correctness.source_type == "HUMAN" and correctness.source_id == "alice@example.com"
    judge = by_id["a-fa5151b7c4144506be4435c5d714a171"]
    human = by_id["a-e7aba204c8d44e3d9fe4e5f49e86cae5"]
    assert judge.valid is False and human.overrides == judge.assessment_id and human.value == "no"
    facts = by_id["a-52a9708a23c24359a03d83186b448dab"]
    assert facts.kind == "expectation" and facts.value == ["records inputs", "records outputs"]


def test_error_trace_has_error_state_exception_events_and_feedback_error() -> None:
    run(str(DATA / "error_trace.json"))
    trace = Trace.objects.get(trace_id="tr-688b32ccd7c864c1d75c9f5cc31c8183")
    assert trace.state == "ERROR"
    tool = trace.spans.get(name="flaky_tool")
    assert tool.status_code == "ERROR" and tool.status_message == "ValueError: tool failed for x=3"
    assert tool.events[0]["name"] == "exception"
    assert tool.events[0]["attributes"]["exception.type"] == "ValueError"
    safety = trace.assessments.get(name="safety")
    assert safety.value is None and safety.error["error_message"] == "judge timeout"


def test_rest_get_response_with_typed_otlp_attributes() -> None:
    run(str(DATA / "rest_v3_get_trace_response_otlp_style.json"))
    trace = Trace.objects.get(trace_id="tr-d275a75162a9e2a945845e8f2887bd53")
    assert trace.execution_duration_ms == 134
    retriever = trace.spans.get(span_type="RETRIEVER")
    assert retriever.inputs == {"query": "What does MLflow Tracing record?", "top_k": 2}
    assert retriever.outputs[0]["metadata"]["score"] == 0.92
    assert trace.assessments.count() == 6


def test_search_response_is_trace_info_without_spans() -> None:
    run(str(DATA / "rest_v3_search_traces_response.json"))
    trace = Trace.objects.get(trace_id="tr-50235f892f1712057eca6a395d385f1d")
    assert trace.span_count == 0 and trace.name == "weather_agent"
    assert trace.request_preview == '{"question": "What\'s the weather in Paris?"}'


def test_otlp_export_request() -> None:
    run(str(DATA / "otlp_export_request_example.json"))
    trace = Trace.objects.get(trace_id="tr-5b8efff798038103d269b633813fc60c")
    assert trace.tags["service.name"] == "my-django-agent"
    root = trace.spans.get(parent_id="")
    assert root.span_type == "AGENT" and root.inputs == {"question": "hi via otlp"} and root.outputs == "hello"
    assert trace.spans.get(name="search_docs").outputs[0]["page_content"] == "doc text"
    assert trace.execution_duration_ms == 1000


def test_mlflow_v2_layout() -> None:
    code, _, err = run(str(DATA / "v2_trace.json"))
    assert code == 0, err
    trace = Trace.objects.get(trace_id="tr-0a1b2c3d4e5f60718293a4b5c6d7e8f9")
    assert trace.name == "qa_chain" and trace.execution_duration_ms == 250
    retriever = trace.spans.get(span_type="RETRIEVER")
    assert retriever.span_id == "2d9b3c4d5e6f7081" and retriever.parent_id == "1c8a2b3c4d5e6f70"
    assert retriever.end_time_ns == 1732000000090000001
    assert retriever.events[0]["time_unix_nano"] == 1732000000020000000
    assert Experiment.objects.get(traces=trace).mlflow_experiment_id == "0"


def test_json_list_jsonl_and_directories(tmp_path: Path) -> None:
    a = json.loads((DATA / "error_trace.json").read_text())
    b = json.loads((DATA / "nested_tool_spans.json").read_text())
    (tmp_path / "list.json").write_text(json.dumps([a, b]))
    assert run(str(tmp_path / "list.json"))[0] == 0
    assert Trace.objects.count() == 2
    Trace.objects.all().delete()
    (tmp_path / "lines.jsonl").write_text(json.dumps(a) + "\n\n" + json.dumps(b) + "\n")
    assert run(str(tmp_path / "lines.jsonl"))[0] == 0
    assert Trace.objects.count() == 2
    Trace.objects.all().delete()
    nested = tmp_path / "dir" / "deeper"
    nested.mkdir(parents=True)
    shutil.copy(DATA / "chat_messages_input.json", nested / "one.json")
    shutil.copy(DATA / "demo_agent.json", tmp_path / "dir" / "two.json")
    (tmp_path / "dir" / "notes.txt").write_text("not a trace")
    code, out, _ = run(str(tmp_path / "dir"))
    assert code == 0 and Trace.objects.count() == 2
    assert out.startswith("2 imported, 0 updated, 0 failed")


def test_reimport_updates_never_duplicates() -> None:
    path = str(DATA / "rag_retriever_dict_input.json")
    run(path)
    before = counts()
    code, out, _ = run(path)
    assert code == 0 and counts() == before
    assert out.startswith("0 imported, 1 updated, 0 failed")


def test_reimport_replaces_changed_spans_and_keeps_app_assessments(tmp_path: Path) -> None:
    raw = json.loads((DATA / "rag_retriever_dict_input.json").read_text())
    path = tmp_path / "t.json"
    path.write_text(json.dumps(raw))
    run(str(path))
    trace = Trace.objects.get(trace_id=raw["info"]["trace_id"])
    mine = make_assessment(trace, "reviewed_in_app", True, source_type="HUMAN")
    raw["data"]["spans"][0]["attributes"]["mlflow.spanOutputs"] = json.dumps("A new answer")
    raw["data"]["spans"] = raw["data"]["spans"][:2]
    path.write_text(json.dumps(raw))
    run(str(path))
    trace.refresh_from_db()
    assert trace.spans.count() == 2 and trace.span_count == 2
    assert trace.spans.get(parent_id="").outputs == "A new answer"
    assert Assessment.objects.filter(pk=mine.pk).exists()
    assert Trace.objects.count() == 1


def test_experiment_option_and_default_grouping() -> None:
    run(str(DATA / "demo_agent.json"), str(DATA / "error_trace.json"))
    assert set(Experiment.objects.values_list("mlflow_experiment_id", flat=True)) == {"1", "2"}
    Trace.objects.all().delete()
    run(str(DATA / "demo_agent.json"), "--experiment", "Cardiology bot")
    assert Trace.objects.get().experiment.name == "Cardiology bot"


BAD_FILES = {
    "not_json.json": (b"{this is not json", "not valid JSON"),
    "empty.json": (b"   \n", "the file is empty"),
    "wrong_shape.json": (b'{"foo": 1}', "not an MLflow trace"),
    "number.json": (b"42", "expected a JSON object or list"),
    "string.json": (b'"hello"', "expected a JSON object or list"),
    "no_trace_id.json": (json.dumps({"info": {"state": "OK", "request_time": "2026-01-01T00:00:00Z"}, "data": {"spans": []}}).encode(), "missing trace_id"),
    "bad_state.json": (json.dumps({"info": {"trace_id": "tr-1", "state": "MAYBE", "request_time": "2026-01-01T00:00:00Z"}}).encode(), "unknown trace state"),
}


def _span_file(tmp_path: Path, mutate) -> Path:
    raw = json.loads((DATA / "rag_retriever_dict_input.json").read_text())
    mutate(raw["data"]["spans"][1])
    path = tmp_path / "bad_span.json"
    path.write_text(json.dumps(raw))
    return path


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_one_line_exit_1_nothing_written_good_files_still_import(tmp_path: Path, name: str) -> None:
    content, reason = BAD_FILES[name]
    bad = tmp_path / name
    bad.write_bytes(content)
    code, out, err = run(str(bad), str(DATA / "demo_agent.json"))
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and reason in lines[0], err
    assert "Traceback" not in err + out
    assert list(Trace.objects.values_list("trace_id", flat=True)) == ["tr-b15a008da447dc5a9c804eb633ea330a"]
    assert "1 imported, 0 updated, 1 failed" in out


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda span: span.pop("span_id"), "missing span 1 span_id"),
        (lambda span: span.update(start_time_unix_nano="soon"), "start_time_unix_nano must be a number"),
        (lambda span: span.update(span_id="!!"), "neither hex nor base64"),
        (lambda span: span.update(attributes=["x"]), "attribute without a key"),
    ],
)
def test_bad_span_writes_nothing_for_the_file(tmp_path: Path, mutate, reason: str) -> None:
    path = _span_file(tmp_path, mutate)
    code, _, err = run(str(path))
    assert code == 1 and reason in err and str(path) in err
    assert counts() == (0, 0, 0)


def test_list_with_a_bad_later_trace_writes_nothing(tmp_path: Path) -> None:
    good = json.loads((DATA / "demo_agent.json").read_text())
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps([good, {"info": {"state": "OK"}}]))
    code, _, err = run(str(path))
    assert code == 1 and "item 1: missing trace_id" in err
    assert counts() == (0, 0, 0)


def test_jsonl_with_one_bad_line_writes_nothing(tmp_path: Path) -> None:
    good = json.dumps(json.loads((DATA / "demo_agent.json").read_text()))
    path = tmp_path / "traces.jsonl"
    path.write_text(good + "\n{broken\n")
    code, _, err = run(str(path))
    assert code == 1 and "line 2: not valid JSON" in err
    assert counts() == (0, 0, 0)


def test_missing_path_and_oversized_file(tmp_path: Path, settings) -> None:
    code, _, err = run(str(tmp_path / "nope.json"))
    assert code == 1 and "nope.json" in err and "cannot read the file" in err
    settings.MAX_IMPORT_FILE_BYTES = 100
    code, _, err = run(str(DATA / "demo_agent.json"))
    assert code == 1 and "byte limit" in err
    assert counts() == (0, 0, 0)
