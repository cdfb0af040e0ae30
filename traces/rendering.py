"""Turn a stored trace into what a domain expert reads: chat, retrieved documents, tool calls, span tree.

Pure functions over already-loaded rows (no queries here), so a page costs the same
number of SQL queries whatever the size of the trace.
"""

from __future__ import annotations

import contextlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .conversation import ConversationSpans, SpanRow, conversation_spans
from .large_values import ShownText, ValueRef, read_limit, shorten, value_limit
from .models import MONITORING_REGISTRATION_KEY, MONITORING_VERSION_KEY, SOURCE_RUN_KEY, Assessment, Span, Trace

MESSAGE_ROLES = {"system", "user", "assistant", "tool", "function", "developer", "model", "human", "ai"}
CHAT_SPAN_TYPES = {"CHAT_MODEL", "LLM"}
DOCUMENTS_SHOWN = 20  # across all retrievers; each retriever shows at least MIN_DOCUMENTS_EACH
MIN_DOCUMENTS_EACH = 3
TOOL_CALLS_SHOWN = 20
TOOL_VALUE_CHARS = 5_000  # each tool call's arguments and result (or the value limit if lower)
DOCUMENT_CHARS = 1_500  # each retrieved document's text (or the value limit if lower)


def _json_text(value: Any) -> str:
    """Indented JSON, strings as they are."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


def pretty_json(value: Any, limit: int | None = None) -> str:
    """Indented JSON (strings as they are), cut at ``limit`` characters (the value limit by default)."""
    text = _json_text(value)
    limit = value_limit() if limit is None else limit
    if len(text) > limit:
        return text[:limit] + f"\n… ({len(text) - limit:,} more characters)"
    return text


def value_ref(span: Span, field: str) -> ValueRef:
    """Where a span's value is stored, with its full length when the loader measured it."""
    total = getattr(span, "payload_chars", {}).get(field)
    return ValueRef(span.span_id, field, total, partial=total is not None and total > read_limit())


def shown_json(span: Span, field: str, limit: int | None = None) -> ShownText:
    """A span value as the page shows it: indented JSON cut at the limit, with a link to all of it."""
    return shorten(_json_text(getattr(span, field)), value_ref(span, field), limit)


@dataclass(slots=True)
class ToolCallRequest:
    name: str
    arguments: str


@dataclass(slots=True)
class ChatMessage:
    role: str
    text: str
    tool_calls: list[ToolCallRequest] = field(default_factory=list)
    name: str = ""
    hidden_chars: int = 0  # characters of the text left off the page
    ref: ValueRef | None = None  # the span value the message comes from, when shortened

    @property
    def css_role(self) -> str:
        return {"human": "user", "ai": "assistant", "model": "assistant", "developer": "system"}.get(
            self.role, self.role if self.role in MESSAGE_ROLES else "other"
        )


def _content_text(content: Any) -> tuple[str, list[ToolCallRequest]]:
    """Text of a message's content: a string, or OpenAI/Anthropic content blocks."""
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    if isinstance(content, list):
        texts: list[str] = []
        calls: list[ToolCallRequest] = []
        for block in content:
            if isinstance(block, str):
                texts.append(block)
            elif isinstance(block, dict):
                kind = block.get("type")
                if kind in ("text", "input_text", "output_text") or "text" in block:
                    texts.append(str(block.get("text", "")))
                elif kind == "tool_use":
                    calls.append(ToolCallRequest(str(block.get("name", "")), pretty_json(block.get("input"))))
                elif kind == "tool_result":
                    inner, _ = _content_text(block.get("content"))
                    texts.append(inner)
                elif kind in ("image_url", "image"):
                    texts.append("[image]")
                else:
                    texts.append(pretty_json(block))
        return "\n\n".join(t for t in texts if t), calls
    return pretty_json(content), []


def _tool_calls(raw: Any) -> list[ToolCallRequest]:
    calls = []
    for call in raw or []:
        if not isinstance(call, dict):
            continue
        function = call.get("function") if isinstance(call.get("function"), dict) else call
        arguments = function.get("arguments", function.get("input", ""))
        if isinstance(arguments, str):
            with contextlib.suppress(ValueError):
                arguments = json.loads(arguments)
        calls.append(ToolCallRequest(str(function.get("name", "")), pretty_json(arguments)))
    return calls


def to_message(raw: Any, default_role: str = "assistant") -> ChatMessage | None:
    if not isinstance(raw, dict) or ("role" not in raw and "content" not in raw):
        return None
    text, block_calls = _content_text(raw.get("content"))
    return ChatMessage(
        role=str(raw.get("role") or default_role),
        text=text,
        tool_calls=_tool_calls(raw.get("tool_calls")) + block_calls,
        name=str(raw.get("name") or ""),
    )


def messages_from_inputs(inputs: Any) -> list[ChatMessage] | None:
    """Chat messages in span inputs: ``{"messages": [...]}`` or a bare list of messages."""
    raw = inputs.get("messages") if isinstance(inputs, dict) else inputs
    if not isinstance(raw, list) or not raw:
        return None
    messages = [to_message(item, "user") for item in raw]
    if any(m is None for m in messages):
        return None
    return [m for m in messages if m is not None]


def messages_from_outputs(outputs: Any) -> list[ChatMessage] | None:
    """The answer in span outputs: OpenAI ``choices``, an Anthropic message, or a message dict."""
    if isinstance(outputs, dict):
        choices = outputs.get("choices")
        if isinstance(choices, list) and choices:
            messages = []
            for choice in choices:
                if isinstance(choice, dict):
                    message = to_message(choice.get("message") or choice.get("delta") or {}, "assistant")
                    if message is None and "text" in choice:
                        message = ChatMessage("assistant", str(choice["text"]))
                    if message is not None:
                        messages.append(message)
            return messages or None
        if outputs.get("type") == "message" or ("role" in outputs and "content" in outputs):
            message = to_message(outputs, "assistant")
            return [message] if message else None
        if isinstance(outputs.get("messages"), list):
            return messages_from_inputs(outputs)
    return None


def _single_text(value: Any) -> str | None:
    """A plain string, or a dict holding exactly one string (``{"question": "…"}``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        (only,) = value.values()
        if isinstance(only, str):
            return only
    return None


@dataclass(slots=True)
class Conversation:
    """The request and the response as chat bubbles (or JSON), and the spans they come from."""

    messages: list[ChatMessage]
    source: ConversationSpans = field(default_factory=lambda: ConversationSpans(None, None, None))
    request_json: ShownText = field(default_factory=lambda: ShownText(""))  # when the request is not chat-shaped
    response_json: ShownText = field(default_factory=lambda: ShownText(""))
    request_ref: ValueRef | None = None  # set when only the beginning of the value was read
    response_ref: ValueRef | None = None


def _shortened(messages: list[ChatMessage], ref: ValueRef) -> list[ChatMessage]:
    limit = value_limit()
    for message in messages:
        if len(message.text) > limit:
            message.hidden_chars = len(message.text) - limit
            message.text = message.text[:limit]
        if message.hidden_chars or ref.partial:
            message.ref = ref
    return messages


def _side(span: Span, field: str, role: str) -> tuple[list[ChatMessage], ShownText]:
    """Messages from a span's inputs (``role`` user) or outputs (assistant), else the value as JSON."""
    value = getattr(span, field)
    found = messages_from_inputs(value) if field == "inputs" else messages_from_outputs(value)
    if found is None and (text := _single_text(value)) is not None:
        found = [ChatMessage(role, text)]
    if found is None:
        return [], shown_json(span, field)
    return _shortened(found, value_ref(span, field)), ShownText("")


def conversation_for(spans: Sequence[Span]) -> Conversation:
    """The conversation of a trace's (loaded) spans, from the spans ``traces.conversation`` picks."""
    source = conversation_spans(SpanRow.of(s) for s in spans)
    by_id = {s.span_id: s for s in spans}
    conversation = Conversation(messages=[], source=source)
    request = by_id.get(source.request.span_id) if source.request else None
    if request is not None and request.inputs is not None:
        asked, conversation.request_json = _side(request, "inputs", "user")
        conversation.messages.extend(asked)
        ref = value_ref(request, "inputs")
        conversation.request_ref = ref if ref.partial else None
    response = by_id.get(source.response.span_id) if source.response else None
    if response is not None and response.outputs is not None:
        answered, conversation.response_json = _side(response, "outputs", "assistant")
        conversation.messages.extend(answered)
        ref = value_ref(response, "outputs")
        conversation.response_ref = ref if ref.partial else None
    return conversation


@dataclass(slots=True)
class RetrievedDocument:
    content: ShownText
    doc_uri: str
    link: str  # doc_uri when it is http(s), else ""
    doc_id: str
    score: float | None
    metadata: dict[str, Any]


@dataclass(slots=True)
class RetrieverCall:
    span: Span
    query: str
    documents: list[RetrievedDocument]
    show: int = DOCUMENTS_SHOWN
    ref: ValueRef | None = None  # the retriever's outputs: every document in full

    @property
    def partial(self) -> bool:
        """Only the beginning of the outputs was read: there may be more documents than listed."""
        return self.ref is not None and self.ref.partial

    @property
    def shown(self) -> list[RetrievedDocument]:
        return self.documents[: self.show]

    @property
    def hidden_count(self) -> int:
        return max(len(self.documents) - self.show, 0)


def safe_link(uri: str) -> str:
    try:
        scheme = urlsplit(uri).scheme.lower()
    except ValueError:
        return ""
    return uri if scheme in ("http", "https") else ""


def _score(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def to_document(raw: Any, ref: ValueRef | None = None) -> RetrievedDocument:
    limit = min(DOCUMENT_CHARS, value_limit())
    if not isinstance(raw, dict):
        return RetrievedDocument(shorten(_json_text(raw), ref, limit), "", "", "", None, {})
    metadata = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    uri = str(metadata.get("doc_uri") or raw.get("doc_uri") or metadata.get("source") or "")
    score = _score(raw.get("score", metadata.get("score")))
    content = raw.get("page_content", raw.get("content", raw.get("text")))
    other = {k: v for k, v in metadata.items() if k not in ("doc_uri", "score")}
    return RetrievedDocument(
        content=shorten(_json_text(content), ref, limit) if content is not None else ShownText(""),
        doc_uri=uri,
        link=safe_link(uri),
        doc_id=str(raw.get("id") or metadata.get("chunk_id") or ""),
        score=score,
        metadata=other,
    )


def documents_of(outputs: Any, ref: ValueRef | None = None) -> list[RetrievedDocument]:
    raw = outputs.get("documents") if isinstance(outputs, dict) else outputs
    if not isinstance(raw, list):
        return []
    return [to_document(item, ref) for item in raw]


def _query_text(inputs: Any) -> str:
    if isinstance(inputs, dict):
        for key in ("query", "question", "input", "text"):
            if isinstance(inputs.get(key), str):
                return inputs[key]
    return inputs if isinstance(inputs, str) else ""


@dataclass(slots=True)
class ToolCall:
    span: Span
    error: str

    @property
    def arguments(self) -> ShownText:
        return shown_json(self.span, "inputs", min(TOOL_VALUE_CHARS, value_limit()))

    @property
    def result(self) -> ShownText:
        if self.span.outputs is None:
            return ShownText("")
        return shown_json(self.span, "outputs", min(TOOL_VALUE_CHARS, value_limit()))


@dataclass(slots=True)
class SpanNode:
    span: Span
    depth: int
    children: list[SpanNode]
    offset: float  # 0–1000 along the trace timeline, for the duration bar
    width: float
    exceptions: list[dict[str, Any]]

    @property
    def is_error(self) -> bool:
        return self.span.status_code == "ERROR" or bool(self.exceptions)


def _exceptions(span: Span) -> list[dict[str, Any]]:
    return [
        {
            "type": str(event.get("attributes", {}).get("exception.type", "")),
            "message": str(event.get("attributes", {}).get("exception.message", "")),
            "stacktrace": str(event.get("attributes", {}).get("exception.stacktrace", "")),
        }
        for event in span.events or []
        if isinstance(event, dict) and event.get("name") == "exception"
    ]


def build_span_tree(spans: Sequence[Span]) -> list[SpanNode]:
    """Roots of the span tree in start order; spans whose parent is missing become roots."""
    if not spans:
        return []
    start = min(s.start_time_ns for s in spans)
    end = max((s.end_time_ns or s.start_time_ns) for s in spans)
    total = max(end - start, 1)
    ids = {s.span_id for s in spans}
    children: dict[str, list[Span]] = defaultdict(list)
    roots: list[Span] = []
    for span in spans:
        (children[span.parent_id] if span.parent_id in ids else roots).append(span)

    def node(span: Span, depth: int) -> SpanNode:
        span_end = span.end_time_ns or span.start_time_ns
        return SpanNode(
            span=span,
            depth=depth,
            children=[],
            offset=round((span.start_time_ns - start) * 1000 / total, 1),
            width=max(round((span_end - span.start_time_ns) * 1000 / total, 1), 2.0),
            exceptions=_exceptions(span),
        )

    # Iterative depth-first build: traces can be thousands of spans deep.
    top = [node(s, 0) for s in roots]
    stack = list(top)
    while stack:
        current = stack.pop()
        current.children = [node(child, current.depth + 1) for child in children.get(current.span.span_id, [])]
        stack.extend(current.children)
    return top


def flatten(nodes: Iterable[SpanNode]) -> list[SpanNode]:
    ordered: list[SpanNode] = []
    stack = list(reversed(list(nodes)))
    while stack:
        current = stack.pop()
        ordered.append(current)
        stack.extend(reversed(current.children))
    return ordered


@dataclass(slots=True)
class AssessmentView:
    assessment: Assessment
    value_text: str
    overridden: bool
    origin: str = ""  # what produced it, when a scorer did: "monitoring: safety v3", "evaluation run 1a2b3c4d"


def assessment_origin(assessment: Assessment) -> str:
    metadata = assessment.metadata if isinstance(assessment.metadata, dict) else {}
    registration = metadata.get(MONITORING_REGISTRATION_KEY)
    if registration:
        version = metadata.get(MONITORING_VERSION_KEY)
        return f"monitoring: {registration}" + (f" v{version}" if version else "")
    run_id = metadata.get(SOURCE_RUN_KEY)
    return f"evaluation run {str(run_id)[:8]}" if run_id else ""


def _assessment_value_text(assessment: Assessment) -> str:
    value = assessment.value
    if assessment.error:
        return "error: " + str(assessment.error.get("error_message") or assessment.error.get("error_code") or "")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return pretty_json(value, limit=2000) if value is not None else "—"


def assessment_views(assessments: Iterable[Assessment]) -> list[AssessmentView]:
    items = list(assessments)
    overridden_ids = {a.overrides for a in items if a.overrides}
    return [
        AssessmentView(
            a,
            _assessment_value_text(a),
            overridden=not a.valid or a.assessment_id in overridden_ids,
            origin=assessment_origin(a),
        )
        for a in items
    ]


@dataclass(slots=True)
class TraceView:
    """Everything the trace body template shows, computed once from loaded rows."""

    trace: Trace
    spans: list[Span]
    root: Span | None
    conversation: Conversation
    retrievers: list[RetrieverCall]
    tool_calls: list[ToolCall]
    tool_call_count: int
    tree: list[SpanNode]
    nodes: list[SpanNode]
    assessments: list[AssessmentView]

    @property
    def document_count(self) -> int:
        return sum(len(r.documents) for r in self.retrievers)

    @property
    def hidden_document_count(self) -> int:
        return sum(r.hidden_count for r in self.retrievers)

    @property
    def hidden_tool_count(self) -> int:
        return self.tool_call_count - len(self.tool_calls)

    @property
    def error_count(self) -> int:
        return sum(1 for n in self.nodes if n.is_error)


def build_trace_view(
    trace: Trace,
    spans: Sequence[Span],
    assessments: Iterable[Assessment],
    *,
    all_documents: bool = False,
    all_tools: bool = False,
) -> TraceView:
    spans = sorted(spans, key=lambda s: (s.start_time_ns, s.pk or 0))
    tree = build_span_tree(spans)
    nodes = flatten(tree)
    root = tree[0].span if tree else None
    retrievers = [
        RetrieverCall(
            span=s,
            query=_query_text(s.inputs),
            documents=documents_of(s.outputs, value_ref(s, "outputs")),
            ref=value_ref(s, "outputs"),
        )
        for s in spans
        if s.span_type == "RETRIEVER"
    ]
    each = max(MIN_DOCUMENTS_EACH, DOCUMENTS_SHOWN // max(len(retrievers), 1))
    for call in retrievers:
        call.show = len(call.documents) if all_documents else each
    tool_nodes = [n for n in nodes if n.span.span_type == "TOOL"]
    tools = [
        ToolCall(span=n.span, error=n.span.status_message or (n.exceptions[0]["message"] if n.exceptions else ""))
        for n in (tool_nodes if all_tools else tool_nodes[:TOOL_CALLS_SHOWN])
    ]
    return TraceView(
        trace=trace,
        spans=spans,
        root=root,
        conversation=conversation_for(spans),
        retrievers=retrievers,
        tool_calls=tools,
        tool_call_count=len(tool_nodes),
        tree=tree,
        nodes=nodes,
        assessments=assessment_views(assessments),
    )
