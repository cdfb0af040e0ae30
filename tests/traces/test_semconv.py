"""Semantic conventions of other instrumentations → span types, inputs and outputs, and the page they make.

Attribute dicts are copied from the conventions' own examples (OpenTelemetry GenAI
``docs/gen-ai/non-normative/examples-llm-calls.md``, OpenInference ``spec/semantic_conventions.md``)
and from what OpenLLMetry and MLflow's GenAI exporter write. The last tests make spans with the real
OpenTelemetry SDK, encode them as an exporter does, parse them with ``traces.ingest.otlp`` and read
the trace page.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from django.test import Client
from google.protobuf.json_format import MessageToDict
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from traces.ingest import store_traces
from traces.ingest.otlp import parse_otlp_request
from traces.ingest.semconv import map_span_conventions
from traces.models import Experiment, Span, Trace
from traces.rendering import documents_of, messages_from_inputs, messages_from_outputs
from traces.tokens import create_api_token

# ---------------------------------------------------------------- OpenTelemetry GenAI

SIMPLE_CHAT = {
    "gen_ai.provider.name": "openai",
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "gpt-4",
    "gen_ai.response.model": "gpt-4-0613",
    "gen_ai.usage.input_tokens": 52,
    "gen_ai.usage.output_tokens": 47,
    "gen_ai.response.finish_reasons": ["stop"],
    "gen_ai.input.messages": json.dumps(
        [
            {"role": "system", "parts": [{"type": "text", "content": "You are a helpful bot"}]},
            {"role": "user", "parts": [{"type": "text", "content": "Tell me a joke about OpenTelemetry"}]},
        ]
    ),
    "gen_ai.output.messages": json.dumps(
        [
            {
                "role": "assistant",
                "parts": [{"type": "text", "content": "Why did the developer bring OpenTelemetry to the party?"}],
                "finish_reason": "stop",
            }
        ]
    ),
}


def test_genai_chat_becomes_openai_messages_and_a_chat_completion() -> None:
    span_type, inputs, outputs = map_span_conventions("chat gpt-4", SIMPLE_CHAT)
    assert span_type == "CHAT_MODEL"
    assert inputs == {
        "messages": [
            {"role": "system", "content": "You are a helpful bot"},
            {"role": "user", "content": "Tell me a joke about OpenTelemetry"},
        ]
    }
    assert outputs == {
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Why did the developer bring OpenTelemetry to the party?"},
                "finish_reason": "stop",
            }
        ]
    }
    assert [m.role for m in messages_from_inputs(inputs)] == ["system", "user"]
    assert messages_from_outputs(outputs)[0].text.startswith("Why did the developer")


def test_genai_tool_calls_and_tool_responses_keep_their_ids() -> None:
    """The spec's "tool calls (functions)" example: span 1 asks for a tool, span 2 gets its answer."""
    first = {
        "gen_ai.operation.name": "chat",
        "gen_ai.input.messages": json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]}]
        ),
        "gen_ai.output.messages": json.dumps(
            [
                {
                    "role": "assistant",
                    "parts": [
                        {
                            "type": "tool_call",
                            "id": "call_VSPygqKTWdrhaFErNvMV18Yl",
                            "name": "get_weather",
                            "arguments": {"location": "Paris"},
                        }
                    ],
                    "finish_reason": "tool_call",
                }
            ]
        ),
    }
    _, _, outputs = map_span_conventions("chat gpt-4", first)
    message = outputs["choices"][0]["message"]
    assert message["content"] is None and outputs["choices"][0]["finish_reason"] == "tool_call"
    assert message["tool_calls"] == [
        {
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'},
            "id": "call_VSPygqKTWdrhaFErNvMV18Yl",
        }
    ]
    (shown,) = messages_from_outputs(outputs)
    assert shown.tool_calls[0].name == "get_weather" and '"Paris"' in shown.tool_calls[0].arguments

    second = {
        "gen_ai.operation.name": "chat",
        "gen_ai.input.messages": json.dumps(
            [
                {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
                {"role": "assistant", "parts": json.loads(first["gen_ai.output.messages"])[0]["parts"]},
                {
                    "role": "tool",
                    "parts": [
                        {"type": "tool_call_response", "id": "call_VSPygqKTWdrhaFErNvMV18Yl", "response": "rainy, 57°F"}
                    ],
                },
            ]
        ),
    }
    _, inputs, _ = map_span_conventions("chat gpt-4", second)
    user, assistant, tool = inputs["messages"]
    assert user == {"role": "user", "content": "Weather in Paris?"}
    assert assistant["tool_calls"][0]["function"]["name"] == "get_weather"
    assert tool == {"role": "tool", "content": "rainy, 57°F", "tool_call_id": "call_VSPygqKTWdrhaFErNvMV18Yl"}


def test_genai_system_instructions_come_first() -> None:
    """MLflow's own GenAI exporter moves system messages out of the input messages into this attribute."""
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "You must never tell jokes"}]),
        "gen_ai.input.messages": json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": "Tell me a joke"}]}]
        ),
    }
    _, inputs, outputs = map_span_conventions("chat gpt-4", attributes)
    assert inputs["messages"] == [
        {"role": "system", "content": "You must never tell jokes"},
        {"role": "user", "content": "Tell me a joke"},
    ]
    assert outputs is None


def test_genai_reasoning_and_media_parts() -> None:
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.input.messages": [  # structured (an OTLP array/kvlist value), not a JSON string
            {
                "role": "user",
                "parts": [
                    {"type": "text", "content": "What is in the attached data?"},
                    {"type": "uri", "modality": "image", "mime_type": "image/png", "uri": "https://example.com/a.png"},
                    {"type": "blob", "modality": "audio", "mime_type": "audio/wav", "content": "aGVsbG8="},
                    {"type": "file", "file_id": "provider_fileid_123"},
                ],
            }
        ],
        "gen_ai.output.messages": json.dumps(
            [
                {
                    "role": "assistant",
                    "parts": [
                        {"type": "reasoning", "content": "The user wants a description…"},
                        {"type": "text", "content": "A logo."},
                    ],
                }
            ]
        ),
    }
    _, inputs, outputs = map_span_conventions("chat", attributes)
    assert inputs["messages"][0]["content"] == (
        "What is in the attached data?\n\n[image: https://example.com/a.png]\n\n[audio audio/wav]\n\n"
        "[file provider_fileid_123]"
    )
    assert outputs["choices"][0]["message"] == {
        "role": "assistant",
        "content": "A logo.",
        "reasoning_content": "The user wants a description…",
    }


def test_genai_execute_tool_span() -> None:
    attributes = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "get_weather",
        "gen_ai.tool.call.id": "call_VSPygqKTWdrhaFErNvMV18Yl",
        "gen_ai.tool.type": "function",
        "gen_ai.tool.call.arguments": '{"location": "Paris"}',
        "gen_ai.tool.call.result": "rainy, 57°F",
    }
    assert map_span_conventions("execute_tool get_weather", attributes) == (
        "TOOL",
        {"location": "Paris"},
        "rainy, 57°F",
    )
    # Without an operation name a tool name still says what the span is.
    del attributes["gen_ai.operation.name"]
    assert map_span_conventions("get_weather", attributes)[0] == "TOOL"


def test_genai_retrieval_span_gives_mlflow_documents() -> None:
    attributes = {
        "gen_ai.operation.name": "retrieval",
        "gen_ai.data_source.id": "weather-knowledge-base",
        "gen_ai.retrieval.query.text": "What is the weather in Seattle?",
        "gen_ai.retrieval.top_k": 3,
        "gen_ai.retrieval.documents": json.dumps(
            [
                {"id": "doc_123", "score": 0.95, "content": "Seattle weather is rainy and cool.", "source": "kb://w/1"},
                {"id": "doc_456", "score": 0.5},
            ]
        ),
    }
    span_type, inputs, outputs = map_span_conventions("retrieval weather-knowledge-base", attributes)
    assert span_type == "RETRIEVER"
    assert inputs == {"query": "What is the weather in Seattle?"}
    assert outputs == [
        {
            "page_content": "Seattle weather is rainy and cool.",
            "metadata": {"source": "kb://w/1", "doc_uri": "kb://w/1", "score": 0.95},
            "id": "doc_123",
        },
        {"page_content": "", "metadata": {"score": 0.5}, "id": "doc_456"},
    ]
    first = documents_of(outputs)[0]
    assert (first.content.text, first.doc_uri, first.doc_id, first.score) == (
        "Seattle weather is rainy and cool.",
        "kb://w/1",
        "doc_123",
        0.95,
    )


@pytest.mark.parametrize(
    ("operation", "span_type"),
    [
        ("chat", "CHAT_MODEL"),
        ("text_completion", "LLM"),
        ("generate_content", "LLM"),
        ("embeddings", "EMBEDDING"),
        ("execute_tool", "TOOL"),
        ("invoke_agent", "AGENT"),
        ("create_agent", "AGENT"),
        ("retrieval", "RETRIEVER"),
        ("RETRIEVER", "RETRIEVER"),  # MLflow's GenAI exporter passes its other span types through
        ("PARSER", "PARSER"),
        ("some_future_operation", None),
    ],
)
def test_genai_operation_names(operation: str, span_type: str | None) -> None:
    assert map_span_conventions("x", {"gen_ai.operation.name": operation})[0] == span_type


def test_genai_span_name_says_the_operation_when_the_attribute_is_missing() -> None:
    assert map_span_conventions("embeddings text-embedding-3-small", {"gen_ai.request.model": "t"})[0] == "EMBEDDING"
    assert map_span_conventions("embeddings", {"http.method": "GET"})[0] is None  # not a GenAI span at all


def test_flattened_prompt_and_completion_of_openllmetry() -> None:
    attributes = {
        "gen_ai.system": "openai",
        "llm.request.type": "chat",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.prompt.0.role": "system",
        "gen_ai.prompt.0.content": "You are a weather bot.",
        "gen_ai.prompt.1.role": "user",
        "gen_ai.prompt.1.content": "Weather in Paris?",
        "gen_ai.prompt.2.role": "assistant",
        "gen_ai.prompt.2.tool_calls.0.id": "call_1",
        "gen_ai.prompt.2.tool_calls.0.name": "get_weather",
        "gen_ai.prompt.2.tool_calls.0.arguments": '{"city": "Paris"}',
        "gen_ai.prompt.3.role": "tool",
        "gen_ai.prompt.3.tool_call_id": "call_1",
        "gen_ai.prompt.3.content": "rainy",
        "gen_ai.prompt.10.role": "user",  # indices sort as numbers, not text
        "gen_ai.prompt.10.content": '[{"type": "text", "text": "And tomorrow?"}]',
        "gen_ai.completion.0.role": "assistant",
        "gen_ai.completion.0.finish_reason": "tool_calls",
        "gen_ai.completion.0.tool_calls.0.id": "call_2",
        "gen_ai.completion.0.tool_calls.0.name": "get_forecast",
        "gen_ai.completion.0.tool_calls.0.arguments": '{"city": "Paris", "days": 1}',
    }
    span_type, inputs, outputs = map_span_conventions("openai.chat", attributes)
    assert span_type == "CHAT_MODEL"
    roles = [m["role"] for m in inputs["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "user"]
    assert inputs["messages"][2]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city": "Paris"}',
    }
    assert inputs["messages"][3] == {"role": "tool", "content": "rainy", "tool_call_id": "call_1"}
    assert messages_from_inputs(inputs)[4].text == "And tomorrow?"
    choice = outputs["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "get_forecast"


def test_messages_logged_as_span_events() -> None:
    events = [
        {"name": "gen_ai.system.message", "attributes": {"gen_ai.system": "openai", "content": "Be brief."}},
        {"name": "gen_ai.user.message", "attributes": {"gen_ai.system": "openai", "content": "Hello?"}},
        {
            "name": "gen_ai.choice",
            "attributes": {
                "index": 0,
                "finish_reason": "stop",
                "message": json.dumps({"role": "assistant", "content": "Hi."}),
            },
        },
        {"name": "exception", "attributes": {"exception.message": "ignored"}},
    ]
    span_type, inputs, outputs = map_span_conventions("chat gpt-4", {"gen_ai.operation.name": "chat"}, events=events)
    assert span_type == "CHAT_MODEL"
    assert inputs == {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello?"}]}
    assert outputs["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "Hi."}, "finish_reason": "stop"}
    ]
    # MLflow's translator reads flat content/role attributes on gen_ai.choice too.
    flat = [{"name": "gen_ai.choice", "attributes": {"role": "assistant", "content": "Flat."}}]
    assert map_span_conventions("chat", {}, events=flat)[2]["choices"][0]["message"]["content"] == "Flat."


# ---------------------------------------------------------------- OpenInference

OPENINFERENCE_LLM = {
    "openinference.span.kind": "LLM",
    "llm.model_name": "gpt-4o",
    "llm.invocation_parameters": '{"temperature": 0}',
    "input.value": '{"messages": [{"role": "user", "content": "Weather in SF?"}], "model": "gpt-4o"}',
    "input.mime_type": "application/json",
    "llm.input_messages.0.message.role": "system",
    "llm.input_messages.0.message.content": "You answer weather questions.",
    "llm.input_messages.1.message.role": "user",
    "llm.input_messages.1.message.contents.0.message_content.type": "text",
    "llm.input_messages.1.message.contents.0.message_content.text": "Weather in SF?",
    "llm.output_messages.0.message.role": "assistant",
    "llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_62136355",
    "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "get_weather",
    "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"city": "SF"}',
    "llm.token_count.prompt": 10,
    "llm.token_count.completion": 20,
}


def test_openinference_llm_messages_and_tool_calls() -> None:
    span_type, inputs, outputs = map_span_conventions("ChatCompletion", OPENINFERENCE_LLM)
    assert span_type == "LLM"
    assert inputs == {
        "messages": [
            {"role": "system", "content": "You answer weather questions."},
            {"role": "user", "content": "Weather in SF?"},
        ]
    }
    call = outputs["choices"][0]["message"]["tool_calls"][0]
    assert call == {
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "SF"}'},
        "id": "call_62136355",
    }


def test_openinference_input_and_output_values_by_mime_type() -> None:
    chain = {
        "openinference.span.kind": "CHAIN",
        "input.value": '{"question": "What is the refund policy?"}',
        "input.mime_type": "application/json",
        "output.value": "42",
        "output.mime_type": "text/plain",
    }
    assert map_span_conventions("RAG", chain) == ("CHAIN", {"question": "What is the refund policy?"}, "42")
    # Without a mime type a JSON object still reads as one; plain text stays text.
    untyped = {"openinference.span.kind": "chain", "input.value": '{"a": 1}', "output.value": "true"}
    assert map_span_conventions("x", untyped) == ("CHAIN", {"a": 1}, "true")
    # A value that says it is JSON but is not stays the text it is.
    broken = {"openinference.span.kind": "CHAIN", "input.value": "{not json", "input.mime_type": "application/json"}
    assert map_span_conventions("x", broken)[1] == "{not json"


OPENINFERENCE_RETRIEVER = {
    "openinference.span.kind": "RETRIEVER",
    "input.value": "How do I get a refund?",
    "retrieval.documents.0.document.id": "doc_001",
    "retrieval.documents.0.document.score": 0.92,
    "retrieval.documents.0.document.content": "Refunds are issued within 14 days.",
    "retrieval.documents.0.document.metadata": '{"doc_uri": "https://docs.example.com/refunds", "chunk_id": "c7"}',
    "retrieval.documents.1.document.id": 42,
    "retrieval.documents.1.document.score": 0.71,
    "retrieval.documents.1.document.content": "Shipping takes 3 days.",
    "retrieval.documents.1.document.metadata": '{"file_path": "/kb/shipping.md"}',
    "output.value": "[Document(...), Document(...)]",
}


def test_openinference_retriever_documents_in_mlflow_shape() -> None:
    span_type, inputs, outputs = map_span_conventions("retrieve", OPENINFERENCE_RETRIEVER)
    assert span_type == "RETRIEVER" and inputs == "How do I get a refund?"
    assert outputs == [
        {
            "page_content": "Refunds are issued within 14 days.",
            "metadata": {"doc_uri": "https://docs.example.com/refunds", "chunk_id": "c7", "score": 0.92},
            "id": "doc_001",
        },
        {
            "page_content": "Shipping takes 3 days.",
            "metadata": {"file_path": "/kb/shipping.md", "doc_uri": "/kb/shipping.md", "score": 0.71},
            "id": "42",
        },
    ]
    first, second = documents_of(outputs)
    assert first.link == "https://docs.example.com/refunds" and first.metadata == {"chunk_id": "c7"}
    assert second.link == "" and second.doc_uri == "/kb/shipping.md"


def test_openinference_retriever_without_documents_keeps_its_output_value() -> None:
    attributes = {"openinference.span.kind": "RETRIEVER", "input.value": "q", "output.value": "nothing found"}
    assert map_span_conventions("r", attributes) == ("RETRIEVER", "q", "nothing found")


def test_openinference_reranker_tool_and_embedding() -> None:
    reranker = {
        "openinference.span.kind": "RERANKER",
        "reranker.query": "refund",
        "reranker.input_documents.0.document.content": "A",
        "reranker.input_documents.1.document.content": "B",
        "reranker.output_documents.0.document.content": "B",
        "reranker.output_documents.0.document.score": 0.9,
    }
    span_type, inputs, outputs = map_span_conventions("rerank", reranker)
    assert span_type == "RERANKER"
    assert inputs["query"] == "refund" and [d["page_content"] for d in inputs["documents"]] == ["A", "B"]
    assert outputs == [{"page_content": "B", "metadata": {"score": 0.9}}]

    tool = {"openinference.span.kind": "TOOL", "tool.name": "get_weather", "tool.parameters": '{"city": "SF"}'}
    tool["output.value"] = "sunny, 22C"
    assert map_span_conventions("get_weather", tool) == ("TOOL", {"city": "SF"}, "sunny, 22C")
    tool["input.value"] = '{"city": "Oakland"}'  # the call's own arguments win over the definition
    assert map_span_conventions("get_weather", tool)[1] == {"city": "Oakland"}

    embedding = {
        "openinference.span.kind": "EMBEDDING",
        "embedding.model_name": "text-embedding-3-small",
        "embedding.embeddings.0.embedding.text": "hello",
        "embedding.embeddings.0.embedding.vector": [0.1, 0.2],
    }
    assert map_span_conventions("embed", embedding) == ("EMBEDDING", {"input": ["hello"]}, None)


@pytest.mark.parametrize(
    "kind", ["LLM", "CHAIN", "RETRIEVER", "RERANKER", "EMBEDDING", "TOOL", "AGENT", "GUARDRAIL", "EVALUATOR"]
)
def test_openinference_span_kinds(kind: str) -> None:
    assert map_span_conventions("x", {"openinference.span.kind": kind})[0] == kind
    assert map_span_conventions("x", {"openinference.span.kind": kind.lower()})[0] == kind


def test_openinference_wins_over_genai_on_the_same_span() -> None:
    attributes = {**SIMPLE_CHAT, "openinference.span.kind": "LLM"}
    span_type, inputs, _ = map_span_conventions("chat gpt-4", attributes)
    assert span_type == "LLM"  # as MLflow's translators are ordered
    assert inputs["messages"][1]["content"] == "Tell me a joke about OpenTelemetry"  # still found, from GenAI


# ---------------------------------------------------------------- Traceloop, unknown spans, robustness


def test_traceloop_workflow_and_task() -> None:
    workflow = {
        "traceloop.span.kind": "workflow",
        "traceloop.entity.name": "answer_question",
        "traceloop.entity.input": '{"args": ["What is OTel?"], "kwargs": {}}',
        "traceloop.entity.output": '"An observability framework."',
    }
    assert map_span_conventions("answer_question.workflow", workflow) == (
        "WORKFLOW",
        {"args": ["What is OTel?"], "kwargs": {}},
        "An observability framework.",
    )
    assert map_span_conventions("t", {"traceloop.span.kind": "task"})[0] == "TASK"


def test_spans_without_a_known_convention_map_to_nothing() -> None:
    attributes = {"http.method": "GET", "http.route": "/api/chat", "input.mime_type": "text/plain"}
    assert map_span_conventions("GET /api/chat", attributes) == (None, None, None)
    assert map_span_conventions("", {}) == (None, None, None)


def test_attributes_are_never_changed_nor_shared() -> None:
    attributes = {
        **copy.deepcopy(OPENINFERENCE_LLM),
        "llm.output_messages.0.message.content": ["structured", {"block": "value"}],
        "gen_ai.input.messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "gen_ai.tool.call.arguments": {"city": ["Paris"]},
    }
    before = copy.deepcopy(attributes)
    _, _, outputs = map_span_conventions("x", attributes)
    assert attributes == before
    outputs["choices"][0]["message"]["content"].append("changed")
    assert attributes == before
    _, genai_inputs, _ = map_span_conventions("x", {"gen_ai.input.messages": attributes["gen_ai.input.messages"]})
    genai_inputs["messages"][0]["content"][0]["text"] = "changed"
    assert attributes == before


def test_values_too_deep_to_store_stay_text() -> None:
    """A JSON string nested past the storable depth is not decoded: the span keeps its raw text and stores."""
    deep = "[" * 200 + "]" * 200
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.input.messages": deep, "gen_ai.tool.call.result": deep}
    assert map_span_conventions("chat", attributes) == ("CHAT_MODEL", None, deep)


JSON_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(), st.text(max_size=20))
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
KEYS = st.sampled_from(
    [
        *SIMPLE_CHAT,
        *OPENINFERENCE_LLM,
        *OPENINFERENCE_RETRIEVER,
        "gen_ai.system_instructions",
        "gen_ai.prompt.0.content",
        "gen_ai.prompt.0.tool_calls.0.arguments",
        "gen_ai.completion.1.role",
        "gen_ai.retrieval.documents",
        "gen_ai.tool.call.arguments",
        "gen_ai.tool.call.result",
        "reranker.output_documents.0.document.metadata",
        "traceloop.span.kind",
        "traceloop.entity.output",
        "tool.parameters",
    ]
)
VALUES = st.one_of(JSON_VALUES, JSON_VALUES.map(lambda v: json.dumps(v, allow_nan=True)))


@settings(max_examples=300, deadline=None)
@given(
    attributes=st.dictionaries(KEYS, VALUES, max_size=8),
    events=st.lists(
        st.fixed_dictionaries(
            {
                "name": st.sampled_from(["gen_ai.user.message", "gen_ai.choice", "gen_ai.content.prompt", "x"]),
                "attributes": st.dictionaries(
                    st.sampled_from(["content", "role", "message", "tool_calls", "gen_ai.prompt"]), VALUES, max_size=3
                ),
            }
        ),
        max_size=3,
    ),
)
def test_any_attribute_values_map_without_raising(attributes: dict[str, Any], events: list[dict[str, Any]]) -> None:
    before = copy.deepcopy(attributes)
    span_type, _, _ = map_span_conventions("chat", attributes, events=events)
    assert span_type is None or isinstance(span_type, str)
    assert json.dumps(attributes, sort_keys=True, default=str) == json.dumps(before, sort_keys=True, default=str)


# ---------------------------------------------------------------- through the OTLP parser


def _otlp_span(attributes: dict[str, Any], name: str = "span", span_id: str = "00f067aa0ba902b7") -> dict[str, Any]:
    def value(v: Any) -> dict[str, Any]:
        if isinstance(v, bool):
            return {"boolValue": v}
        if isinstance(v, int):
            return {"intValue": str(v)}
        if isinstance(v, float):
            return {"doubleValue": v}
        return {"stringValue": v}

    return {
        "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
        "spanId": span_id,
        "name": name,
        "startTimeUnixNano": "1760000000000000000",
        "endTimeUnixNano": "1760000001000000000",
        "attributes": [{"key": k, "value": value(v)} for k, v in attributes.items()],
    }


def _parse(*spans: dict[str, Any]) -> list[Any]:
    (trace,) = parse_otlp_request({"resourceSpans": [{"scopeSpans": [{"spans": list(spans)}]}]})
    return trace.spans


def test_mlflow_attributes_win_and_raw_attributes_are_kept() -> None:
    attributes = {
        **OPENINFERENCE_RETRIEVER,
        "mlflow.spanType": '"CHAIN"',
        "mlflow.spanInputs": '{"query": "from mlflow"}',
    }
    (span,) = _parse(_otlp_span(attributes))
    assert span.span_type == "CHAIN"
    assert span.inputs == {"query": "from mlflow"}
    assert span.outputs[0]["page_content"] == "Refunds are issued within 14 days."  # mlflow had no outputs
    assert span.attributes["retrieval.documents.0.document.content"] == "Refunds are issued within 14 days."
    assert "mlflow.spanType" not in span.attributes


def test_parsed_spans_of_other_instrumentations_feed_the_trace_previews() -> None:
    root = {
        "openinference.span.kind": "CHAIN",
        "input.value": "How do I get a refund?",
        "output.value": "Within 14 days.",
    }
    (span,) = _parse(_otlp_span(root, name="RAG"))
    assert (span.span_type, span.inputs, span.outputs) == ("CHAIN", "How do I get a refund?", "Within 14 days.")
    (trace,) = parse_otlp_request({"resourceSpans": [{"scopeSpans": [{"spans": [_otlp_span(root, name="RAG")]}]}]})
    assert trace.request_preview == "How do I get a refund?" and trace.response_preview == "Within 14 days."


def test_a_span_with_values_too_deep_still_parses() -> None:
    (span,) = _parse(_otlp_span({"gen_ai.operation.name": "chat", "gen_ai.input.messages": "[" * 300 + "]" * 300}))
    assert span.span_type == "CHAT_MODEL" and span.inputs is None


# ---------------------------------------------------------------- real OpenTelemetry SDK spans → the trace page


def _finished_spans(build: Any) -> list[Any]:
    """Run ``build(tracer)`` under the real SDK; its spans in the order they ended."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "support-bot"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    build(provider.get_tracer("tests.semconv"))
    provider.shutdown()
    return list(exporter.get_finished_spans())


def _export(build: Any) -> dict[str, Any]:
    """The spans of ``build`` encoded as the OTLP exporters do, in OTLP's JSON mapping."""
    return MessageToDict(encode_spans(_finished_spans(build)))


def _genai_agent(tracer: Any) -> None:
    with tracer.start_as_current_span("invoke_agent support_bot") as agent:
        agent.set_attribute("gen_ai.operation.name", "invoke_agent")
        agent.set_attribute("gen_ai.agent.name", "support_bot")
        with tracer.start_as_current_span("retrieval kb") as retrieval:
            retrieval.set_attribute("gen_ai.operation.name", "retrieval")
            retrieval.set_attribute("gen_ai.retrieval.query.text", "refund window")
            documents = [{"id": "kb-7", "score": 0.83, "content": "Refunds are accepted for 30 days after delivery."}]
            retrieval.set_attribute("gen_ai.retrieval.documents", json.dumps(documents))
        with tracer.start_as_current_span("chat gpt-4o") as chat:
            chat.set_attribute("gen_ai.operation.name", "chat")
            chat.set_attribute("gen_ai.request.model", "gpt-4o")
            chat.set_attribute(
                "gen_ai.system_instructions", json.dumps([{"type": "text", "content": "Cite the policy."}])
            )
            question = [{"role": "user", "parts": [{"type": "text", "content": "Can I still return my kettle?"}]}]
            chat.set_attribute("gen_ai.input.messages", json.dumps(question))
            answer = [
                {
                    "role": "assistant",
                    "parts": [
                        {"type": "text", "content": "Yes, within 30 days of delivery."},
                        {"type": "tool_call", "id": "call_1", "name": "open_return", "arguments": {"item": "kettle"}},
                    ],
                    "finish_reason": "tool_call",
                }
            ]
            chat.set_attribute("gen_ai.output.messages", json.dumps(answer))
            chat.set_attribute("gen_ai.response.finish_reasons", ["tool_call"])
        with tracer.start_as_current_span("execute_tool open_return") as tool:
            tool.set_attribute("gen_ai.operation.name", "execute_tool")
            tool.set_attribute("gen_ai.tool.name", "open_return")
            tool.set_attribute("gen_ai.tool.call.arguments", '{"item": "kettle"}')
            tool.set_attribute("gen_ai.tool.call.result", '{"return_id": "R-1001"}')


def _openinference_rag(tracer: Any) -> None:
    with tracer.start_as_current_span("query") as root:
        root.set_attribute("openinference.span.kind", "CHAIN")
        root.set_attribute("input.value", "How long does shipping take?")
        with tracer.start_as_current_span("retrieve") as retriever:
            for key, value in OPENINFERENCE_RETRIEVER.items():
                retriever.set_attribute(key, value)
        with tracer.start_as_current_span("llm") as llm:
            llm.set_attribute("openinference.span.kind", "LLM")
            llm.set_attribute("llm.input_messages.0.message.role", "user")
            llm.set_attribute("llm.input_messages.0.message.content", "How long does shipping take?")
            llm.set_attribute("llm.output_messages.0.message.role", "assistant")
            llm.set_attribute("llm.output_messages.0.message.content", "Shipping takes 3 days.")
        root.set_attribute("output.value", "Shipping takes 3 days.")


@pytest.fixture
def admin_client(client: Client, admin_user: Any) -> Client:
    client.force_login(admin_user)
    return client


def _store_and_render(document: dict[str, Any], client: Client) -> tuple[Trace, str]:
    (record,) = parse_otlp_request(document)
    store_traces([record])
    trace = Trace.objects.get(trace_id=record.trace_id)
    response = client.get(trace.get_absolute_url())
    assert response.status_code == 200
    return trace, response.content.decode()


@pytest.mark.django_db
def test_sdk_genai_trace_page_shows_chat_documents_and_tool_calls(admin_client: Client) -> None:
    trace, page = _store_and_render(_export(_genai_agent), admin_client)
    types = dict(Span.objects.filter(trace=trace).values_list("name", "span_type"))
    assert types == {
        "invoke_agent support_bot": "AGENT",
        "retrieval kb": "RETRIEVER",
        "chat gpt-4o": "CHAT_MODEL",
        "execute_tool open_return": "TOOL",
    }
    assert trace.tags["service.name"] == "support-bot"
    # Chat bubbles from the chat span (the agent root recorded nothing).
    assert '<div class="bubble system">' in page and "Cite the policy." in page
    assert '<div class="bubble user">' in page and "Can I still return my kettle?" in page
    assert '<div class="bubble assistant">' in page and "Yes, within 30 days of delivery." in page
    assert "calls tool</span> <strong>open_return</strong>" in page
    # The retrieved document card and the tool call card.
    assert 'id="documents"' in page and 'class="doc"' in page
    assert "Refunds are accepted for 30 days after delivery." in page and "score 0.83" in page
    assert "searched for <q>refund window</q>" in page
    assert 'id="tools"' in page and "R-1001" in page


@pytest.mark.django_db
def test_sdk_openinference_trace_page_shows_chat_and_linked_documents(admin_client: Client) -> None:
    trace, page = _store_and_render(_export(_openinference_rag), admin_client)
    assert trace.request_preview == "How long does shipping take?"
    assert '<div class="bubble user">' in page and '<div class="bubble assistant">' in page
    assert "Shipping takes 3 days." in page
    assert page.count('<li class="doc">') == 2
    assert 'href="https://docs.example.com/refunds"' in page and "Refunds are issued within 14 days." in page
    assert "/kb/shipping.md" in page and "score 0.92" in page and "score 0.71" in page


@pytest.mark.django_db
def test_post_v1_traces_in_pieces_maps_conventions_and_previews_from_the_root(admin_client: Client, admin_user) -> None:
    """Through the OTLP/HTTP endpoint and its live store: children first, one request each, the root last."""
    Experiment.objects.create(name="Support bot", mlflow_experiment_id="17")
    token = create_api_token(user=admin_user, name="exporter")[1]
    spans = _finished_spans(_openinference_rag)  # in end order: the root comes last
    for span in spans:
        response = admin_client.post(
            "/v1/traces",
            encode_spans([span]).SerializeToString(),
            content_type="application/x-protobuf",
            HTTP_AUTHORIZATION=f"Bearer {token}",
            HTTP_X_MLFLOW_EXPERIMENT_ID="17",
        )
        assert response.status_code == 200
    trace = Trace.objects.get()
    assert trace.state == "OK" and trace.request_preview == "How long does shipping take?"
    assert trace.response_preview == "Shipping takes 3 days."
    assert dict(trace.spans.values_list("name", "span_type")) == {
        "query": "CHAIN",
        "retrieve": "RETRIEVER",
        "llm": "LLM",
    }
    page = admin_client.get(trace.get_absolute_url()).content.decode()
    assert page.count('<li class="doc">') == 2 and 'href="https://docs.example.com/refunds"' in page
    assert '<div class="bubble user">' in page and '<div class="bubble assistant">' in page
