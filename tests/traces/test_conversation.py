"""The conversation rule: which span supplies a trace's request and response (traces/conversation.py)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.factories import make_trace
from traces.conversation import SpanRow, conversation_io, conversation_spans, has_value
from traces.models import Span

T0 = 1_000_000_000


def row(
    span_id: str, parent: str = "", *, start: int = 0, end: int | None = None, kind: str = "CHAIN", io: str = ""
) -> SpanRow:
    """A span row: ``io`` says what it recorded: "i" inputs, "o" outputs, "io" both."""
    return SpanRow(
        span_id=span_id,
        parent_id=parent,
        start_time_ns=T0 + start,
        end_time_ns=T0 + (end if end is not None else start + 10),
        span_type=kind,
        has_inputs="i" in io,
        has_outputs="o" in io,
        name=span_id,
    )


def picked(*rows: SpanRow) -> tuple[str | None, str | None]:
    spans = conversation_spans(rows)
    return (
        spans.request.span_id if spans.request else None,
        spans.response.span_id if spans.response else None,
    )


def test_a_root_that_recorded_both_is_the_source_as_in_mlflow() -> None:
    assert picked(row("root", io="io", end=100), row("llm", "root", start=1, kind="LLM", io="io")) == ("root", "root")


def test_a_wrapper_root_that_recorded_nothing_gives_its_child() -> None:
    rows = (
        row("wrapper", end=100),
        row("agent", "wrapper", start=1, end=99, kind="AGENT", io="io"),
        row("llm", "agent", start=2, kind="LLM", io="io"),
    )
    assert picked(*rows) == ("agent", "agent")
    assert not conversation_spans(rows).from_root


def test_retrievers_and_tools_below_the_root_are_passed_over_for_the_chat_model() -> None:
    rows = (
        row("wrapper", end=100),
        row("retrieve", "wrapper", start=1, end=5, kind="RETRIEVER", io="io"),
        row("chat", "wrapper", start=6, end=90, kind="CHAT_MODEL", io="io"),
        row("tool", "wrapper", start=91, end=95, kind="TOOL", io="io"),
    )
    assert picked(*rows) == ("chat", "chat")


def test_only_steps_recorded_anything_then_they_count() -> None:
    assert picked(row("wrapper", end=100), row("tool", "wrapper", start=1, kind="TOOL", io="io")) == ("tool", "tool")


def test_a_pipeline_takes_the_request_from_its_first_step_and_the_response_from_its_last() -> None:
    rows = (
        row("wrapper", end=100),
        row("rewrite", "wrapper", start=1, end=10, io="io"),
        row("answer", "wrapper", start=11, end=99, kind="AGENT", io="io"),
    )
    assert picked(*rows) == ("rewrite", "answer")


def test_each_side_falls_back_on_its_own() -> None:
    rows = (row("root", io="i", end=100), row("llm", "root", start=1, kind="LLM", io="io"))
    assert picked(*rows) == ("root", "llm")
    assert not conversation_spans(rows).from_root


def test_outermost_wins_over_earlier_but_deeper_spans() -> None:
    rows = (
        row("wrapper", end=100),
        row("inner", "middle", start=2, io="io"),
        row("middle", "wrapper", start=3, end=90, io="io"),
    )
    assert picked(*rows) == ("middle", "middle")


def test_nothing_recorded_means_no_source() -> None:
    assert picked(row("root"), row("child", "root", start=1)) == (None, None)
    assert picked() == (None, None)
    assert conversation_spans([row("root")]).from_root


def test_orphans_hang_below_the_root_and_parent_cycles_do_not_hang() -> None:
    assert picked(row("root", end=100), row("orphan", "missing", start=1, io="io")) == ("orphan", "orphan")
    assert picked(row("orphan", "missing", io="io"), row("late-orphan", "gone", start=5, io="o")) == (
        "orphan",
        "late-orphan",
    )
    cycle = (row("a", "b", io="io"), row("b", "a", start=1, io="io"))
    assert picked(*cycle) == (None, None)
    assert picked(row("self", "self", io="io"), row("root", start=1, io="io")) == ("root", "root")


@pytest.mark.parametrize(
    ("value", "recorded"),
    [(None, False), ("", False), ({}, False), ([], False), (0, True), (False, True), ("x", True), ({"a": None}, True)],
)
def test_what_counts_as_recorded(value: Any, recorded: bool) -> None:
    assert has_value(value) is recorded


@st.composite
def span_trees(draw: st.DrawFn) -> list[SpanRow]:
    count = draw(st.integers(1, 12))
    rows = []
    for index in range(count):
        parent = draw(st.sampled_from(["", *[f"s{i}" for i in range(index)]])) if index else ""
        start = draw(st.integers(0, 50))
        rows.append(
            row(
                f"s{index}",
                parent,
                start=start,
                end=start + draw(st.integers(0, 50)),
                kind=draw(st.sampled_from(["CHAIN", "AGENT", "LLM", "TOOL", "RETRIEVER"])),
                io=draw(st.sampled_from(["", "i", "o", "io"])),
            )
        )
    return rows


@settings(max_examples=300, deadline=None)
@given(span_trees())
def test_the_picked_spans_recorded_the_side_they_supply_and_nothing_shallower_did(rows: list[SpanRow]) -> None:
    spans = conversation_spans(rows)
    by_id = {r.span_id: r for r in rows}

    def depth(r: SpanRow) -> int:
        return 0 if not r.parent_id else 1 + depth(by_id[r.parent_id])

    for chosen, present in ((spans.request, "has_inputs"), (spans.response, "has_outputs")):
        recorded = [r for r in rows if getattr(r, present)]
        assert (chosen is None) == (not recorded)
        if chosen is not None:
            assert getattr(chosen, present)
            assert all(depth(r) >= depth(chosen) for r in recorded if r.span_type not in {"TOOL", "RETRIEVER"})


# ---------------------------------------------------------------- in the database


@pytest.mark.django_db
def test_conversation_io_reads_the_wrapper_trace_from_its_agent_span(import_sample) -> None:
    trace = import_sample("multi_turn_wrapper_root.json")
    agent = Span.objects.get(trace=trace, name="chat_agent")
    (io,) = conversation_io([trace.pk]).values()
    assert io.request_span_id == io.response_span_id == agent.span_id
    assert io.inputs == agent.inputs
    assert [m["role"] for m in io.inputs["messages"]] == ["user", "assistant", "user"]
    assert io.outputs["choices"][0]["message"]["content"].startswith("Here's the K8s deployment workflow")


@pytest.mark.django_db
def test_conversation_io_matches_the_root_when_the_root_recorded_both(import_sample) -> None:
    names = ["demo_rag_pipeline.json", "chat_messages_input.json", "eval_trace_with_scorer_feedback.json"]
    traces = [import_sample(name) for name in names]
    found = conversation_io([t.pk for t in traces])
    for trace in traces:
        root = Span.objects.get(trace=trace, parent_id="")
        assert (found[trace.pk].inputs, found[trace.pk].outputs) == (root.inputs, root.outputs)
        assert found[trace.pk].request_span_id == root.span_id


@pytest.mark.django_db
def test_conversation_io_takes_at_most_three_queries_for_any_number_of_traces(
    import_sample, django_assert_num_queries
) -> None:
    traces = [make_trace(n_spans=6) for _ in range(30)]
    with django_assert_num_queries(1):  # every root recorded both: read like MLflow reads them
        found = conversation_io([t.pk for t in traces])
    assert all(found[t.pk].outputs == "Inputs, outputs and metadata." for t in traces)
    wrappers = [import_sample("multi_turn_wrapper_root.json"), import_sample("error_trace.json")]
    with django_assert_num_queries(3):
        found = conversation_io([*(t.pk for t in traces), *(w.pk for w in wrappers)])
    assert len(found) == 32
    assert found[wrappers[0].pk].inputs["messages"][0]["content"].startswith("I have a model logged in MLflow")
    failing = Span.objects.get(trace=wrappers[1], parent_id="")
    assert (found[wrappers[1].pk].inputs, found[wrappers[1].pk].outputs) == ({"request": {"x": 3}}, None)
    assert found[wrappers[1].pk].request_span_id == failing.span_id
    assert found[wrappers[1].pk].response_span_id is None  # the failed tool recorded no outputs either


# ---------------------------------------------------------------- on the pages


@pytest.mark.django_db
def test_trace_page_shows_the_multi_turn_chat_of_a_wrapper_trace_and_says_where_it_comes_from(
    client: Client, admin_user, import_sample
) -> None:
    trace = import_sample("multi_turn_wrapper_root.json")
    client.force_login(admin_user)
    body = client.get(trace.get_absolute_url()).content.decode()
    assert "This trace has no recorded request or response" not in body
    conversation = body[body.index('id="conversation"') : body.index('id="tools"')]
    assert conversation.count('class="bubble user"') == 2 and conversation.count('class="bubble assistant"') == 2
    assert "I have a model logged in MLflow. How do I deploy it as an API?" in conversation
    assert "Yes, I want to deploy to Kubernetes. What&#x27;s the process?" in conversation
    assert "Here&#x27;s the K8s deployment workflow" in conversation
    assert "chat_agent</a>: the root span <strong>handle_chat_request</strong> recorded no request or response" in (
        conversation
    )


def open_in_review(client: Client, reviewer: Any, trace: Any) -> str:
    """Put ``trace`` in a new labeling session of ``reviewer`` and open its item as that reviewer."""
    from django.urls import reverse

    from labeling import services
    from labeling.models import LabelSchema

    schema = services.save_label_schema(
        schema=LabelSchema(name="correct", type="feedback", title="Correct?", input_type="pass_fail")
    )
    session = services.create_labeling_session(name="chats", schemas=[schema], reviewers=[reviewer])
    services.add_traces_to_session(session=session, trace_ids=[trace.trace_id])
    client.force_login(reviewer)
    response = client.get(reverse("labeling:review_start", args=[session.pk]), follow=True)
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.django_db
def test_review_screen_shows_the_same_conversation(client: Client, reviewer, import_sample) -> None:
    body = open_in_review(client, reviewer, import_sample("multi_turn_wrapper_root.json"))
    assert "This trace has no recorded request or response" not in body
    assert "Yes, I want to deploy to Kubernetes. What&#x27;s the process?" in body
    assert "Here&#x27;s the K8s deployment workflow" in body
    assert "the root span <strong>handle_chat_request</strong> recorded no request or response" in body


@pytest.mark.django_db
def test_a_trace_whose_root_recorded_both_says_so(client: Client, admin_user) -> None:
    trace = make_trace(question="Is aspirin safe?")
    client.force_login(admin_user)
    body = client.get(trace.get_absolute_url()).content.decode()
    assert "From the root span" in body and "Is aspirin safe?" in body
