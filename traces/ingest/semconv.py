"""Other instrumentations' semantic conventions → MLflow span types, inputs and outputs.

Spans exported by MLflow carry ``mlflow.spanType`` / ``mlflow.spanInputs`` / ``mlflow.spanOutputs``.
Spans from other instrumentations describe the same things with their own attributes; this module
reads them into MLflow's shapes, so the trace page shows chat bubbles, retrieved documents and
tool calls whatever produced the trace:

* the **OpenTelemetry GenAI** conventions: ``gen_ai.operation.name``; ``gen_ai.input.messages`` /
  ``gen_ai.output.messages`` (messages of ``parts``) with ``gen_ai.system_instructions``; the older
  flattened ``gen_ai.prompt.N.*`` / ``gen_ai.completion.N.*`` (OpenLLMetry); the span events
  ``gen_ai.{system,user,assistant,tool}.message`` and ``gen_ai.choice``; ``gen_ai.tool.*``;
  ``gen_ai.retrieval.*``;
* **OpenInference** (Arize Phoenix, its LlamaIndex/LangChain/OpenAI instrumentations):
  ``openinference.span.kind``, ``input.value`` / ``output.value``, ``llm.input_messages.N.*`` /
  ``llm.output_messages.N.*``, ``retrieval.documents.N.document.*``, ``reranker.*``;
* **Traceloop** (OpenLLMetry): ``traceloop.span.kind``, ``traceloop.entity.input`` / ``output``.

Like MLflow's own translators (``mlflow/tracing/otel/translation/``), each field is taken from the
first convention that has it, OpenInference first. Messages become OpenAI chat shapes: inputs
``{"messages": [{"role", "content", "tool_calls"?}]}``, outputs a chat completion
(``{"choices": [{"index", "message", "finish_reason"}]}``); documents become MLflow ``Document``
dicts (``{"page_content", "metadata": {"doc_uri", "score", …}, "id"}``). The attributes are only
read, never changed: the caller stores them as they came.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from .validation import MAX_JSON_DEPTH, json_depth_exceeds

Attributes = Mapping[str, Any]
Message = dict[str, Any]

OPENINFERENCE_KINDS = {
    "LLM": "LLM",
    "CHAIN": "CHAIN",
    "RETRIEVER": "RETRIEVER",
    "RERANKER": "RERANKER",
    "EMBEDDING": "EMBEDDING",
    "TOOL": "TOOL",
    "AGENT": "AGENT",
    "GUARDRAIL": "GUARDRAIL",
    "EVALUATOR": "EVALUATOR",
    "UNKNOWN": "UNKNOWN",
}
GENAI_OPERATIONS = {
    "chat": "CHAT_MODEL",
    "text_completion": "LLM",
    "generate_content": "LLM",
    "response": "LLM",
    "embeddings": "EMBEDDING",
    "execute_tool": "TOOL",
    "invoke_agent": "AGENT",
    "create_agent": "AGENT",
    "invoke_workflow": "CHAIN",
    "retrieval": "RETRIEVER",
}
# MLflow's own GenAI exporter (MLFLOW_ENABLE_OTEL_GENAI_SEMCONV) writes span types without an
# operation of their own as they are: gen_ai.operation.name = "RETRIEVER".
MLFLOW_SPAN_TYPES = frozenset(
    {"LLM", "CHAT_MODEL", "CHAIN", "AGENT", "TOOL", "RETRIEVER", "EMBEDDING", "RERANKER", "PARSER", "MEMORY"}
    | {"WORKFLOW", "TASK", "GUARDRAIL", "EVALUATOR", "UNKNOWN"}
)
TRACELOOP_KINDS = {"workflow": "WORKFLOW", "task": "TASK", "agent": "AGENT", "tool": "TOOL"}
TRACELOOP_REQUEST_TYPES = {"chat": "CHAT_MODEL", "completion": "LLM", "embedding": "EMBEDDING", "rerank": "RERANKER"}
URI_KEYS = ("doc_uri", "url", "uri", "source", "file_path")
MESSAGE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
# Attribute namespaces of the conventions above: a span with none of them is passed over at once.
CONVENTION_PREFIXES = (
    *("openinference.", "input.", "output.", "llm.", "retrieval.", "reranker.", "embedding.", "tool."),
    *("gen_ai.", "traceloop."),
)
_INDEXED = re.compile(r"^(\d+)\.(.+)$")


def map_span_conventions(
    name: str, attributes: Attributes, *, events: Iterable[Mapping[str, Any]] = ()
) -> tuple[str | None, Any, Any]:
    """``(span_type, inputs, outputs)`` read from a span's conventions, None for each one not found.

    ``name`` is the span name (GenAI names spans ``"{operation} {target}"``); ``events`` the span's
    events as ``{"name", "attributes"}`` dicts, for instrumentations that log messages as events.
    """
    events = [e for e in events if str(e.get("name") or "").startswith("gen_ai.")]
    if not events and not any(key.startswith(CONVENTION_PREFIXES) for key in attributes):
        return None, None, None
    span_type = _first(
        lambda: _openinference_type(attributes),
        lambda: _genai_type(name, attributes),
        lambda: _traceloop_type(attributes),
    )
    inputs = _first(
        lambda: _openinference_inputs(attributes),
        lambda: _genai_inputs(attributes, events),
        lambda: _decoded(attributes.get("traceloop.entity.input")),
    )
    outputs = _first(
        lambda: _openinference_outputs(attributes),
        lambda: _genai_outputs(attributes, events),
        lambda: _decoded(attributes.get("traceloop.entity.output")),
    )
    return span_type, inputs, outputs


def _first(*readers: Callable[[], Any]) -> Any:
    for read in readers:
        value = read()
        if value is not None and value != "" and value != [] and value != {}:
            return value
    return None


# ---------------------------------------------------------------- shared decoding


def _own(value: Any) -> Any:
    """A copy of a structured attribute value, so what is returned never aliases the attributes."""
    return value if isinstance(value, (str, int, float, bool, type(None))) else copy.deepcopy(value)


def _json(value: Any) -> Any:
    """A JSON-encoded attribute decoded; text that is not JSON, or nests too deep to store, stays text."""
    if not isinstance(value, str):
        return _own(value)
    try:
        decoded = orjson.loads(value)
    except orjson.JSONDecodeError:
        return value
    # The span is refused past MAX_JSON_DEPTH; the raw string was storable, so keep that instead.
    return value if json_depth_exceeds(decoded, MAX_JSON_DEPTH - 8) else decoded


def _decoded(value: Any) -> Any:
    """``_json`` for text: JSON objects, arrays and strings are decoded; ``"42"`` or ``"true"`` stay text."""
    decoded = _json(value)
    return decoded if isinstance(decoded, (str, list, dict)) else _own(value)


def _text(value: Any) -> str:
    """A value as message or document text: strings as they are, anything else as JSON."""
    if value is None or isinstance(value, str):
        return value or ""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return str(value)


def _indexed(attributes: Attributes, prefix: str) -> list[dict[str, Any]]:
    """Flattened list attributes (``prefix.0.key``, ``prefix.1.key``) as a list of ``{key: value}``.

    An OTLP array of key/value lists under ``prefix`` itself (some exporters send that) is read too.
    """
    whole = attributes.get(prefix)
    if isinstance(whole, list):
        return [dict(item) for item in whole if isinstance(item, dict)]
    items: dict[int, dict[str, Any]] = {}
    start = prefix + "."
    for key, value in attributes.items():
        if key.startswith(start) and (match := _INDEXED.match(key[len(start) :])):
            items.setdefault(int(match.group(1)), {})[match.group(2)] = value
    return [items[i] for i in sorted(items)]


def _tool_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    """An OpenAI tool call; arguments are a JSON string there."""
    arguments = arguments if isinstance(arguments, str) else _text(arguments)
    call: dict[str, Any] = {"type": "function", "function": {"name": str(name or ""), "arguments": arguments}}
    if call_id:
        call["id"] = str(call_id)
    return call


def _message(role: Any, content: Any, tool_calls: list[dict[str, Any]] | None = None, **extra: Any) -> Message:
    message: Message = {"role": str(role or "user"), "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    message.update({k: v for k, v in extra.items() if v not in (None, "")})
    return message


def _completion(messages: list[Message], finish_reasons: list[Any] | None = None) -> dict[str, Any] | None:
    """Output messages as an OpenAI chat completion, which the page, export and scorers read."""
    if not messages:
        return None
    choices = []
    for index, message in enumerate(messages):
        reason = message.pop("finish_reason", None)
        if reason is None and finish_reasons and index < len(finish_reasons):
            reason = finish_reasons[index]
        choices.append({"index": index, "message": message, "finish_reason": reason})
    return {"choices": choices}


def _document(content: Any, doc_id: Any, score: Any, metadata: Any) -> dict[str, Any]:
    """An MLflow ``Document`` dict: ``page_content``, ``metadata`` (with ``doc_uri``/``score``) and ``id``."""
    meta = _json(metadata) if metadata is not None else {}
    meta = dict(meta) if isinstance(meta, dict) else ({"metadata": meta} if meta not in (None, "") else {})
    if "doc_uri" not in meta and (uri := next((meta[k] for k in URI_KEYS if meta.get(k)), None)):
        meta["doc_uri"] = uri
    if score is not None and "score" not in meta:
        meta["score"] = score
    document: dict[str, Any] = {"page_content": _text(content), "metadata": meta}
    if doc_id not in (None, ""):
        document["id"] = str(doc_id)
    return document


# ---------------------------------------------------------------- OpenInference


def _openinference_kind(attributes: Attributes) -> str:
    kind = attributes.get("openinference.span.kind")
    return kind.upper() if isinstance(kind, str) else ""


def _openinference_type(attributes: Attributes) -> str | None:
    return OPENINFERENCE_KINDS.get(_openinference_kind(attributes))


def _openinference_value(attributes: Attributes, side: str) -> Any:
    """``input.value`` / ``output.value``: decoded when the mime type says JSON or the text is JSON (not a number)."""
    value = attributes.get(f"{side}.value")
    if attributes.get(f"{side}.mime_type") == "application/json":
        return _json(value)
    return _decoded(value)


def _openinference_message(flat: Mapping[str, Any]) -> Message:
    """One ``message.*`` item of ``llm.input_messages`` / ``llm.output_messages``."""
    content: Any = _own(flat.get("message.content"))
    if content is None:
        contents = _indexed(flat, "message.contents")
        texts = [str(c.get("message_content.text") or "") for c in contents if c.get("message_content.text")]
        content = "\n\n".join(texts) if texts else None
    calls = [
        _tool_call(c.get("tool_call.id"), c.get("tool_call.function.name"), c.get("tool_call.function.arguments"))
        for c in _indexed(flat, "message.tool_calls")
    ]
    if function := flat.get("message.function_call_name"):
        calls.append(_tool_call(None, function, flat.get("message.function_call_arguments_json")))
    extra = {"tool_call_id": flat.get("message.tool_call_id"), "name": flat.get("message.name")}
    return _message(flat.get("message.role"), content, calls, **extra)


def _openinference_documents(attributes: Attributes, prefix: str) -> list[dict[str, Any]]:
    return [
        _document(d.get("document.content"), d.get("document.id"), d.get("document.score"), d.get("document.metadata"))
        for d in _indexed(attributes, prefix)
    ]


def _openinference_inputs(attributes: Attributes) -> Any:
    kind = _openinference_kind(attributes)
    if messages := [_openinference_message(m) for m in _indexed(attributes, "llm.input_messages")]:
        return {"messages": messages}
    if kind == "RERANKER" and (documents := _openinference_documents(attributes, "reranker.input_documents")):
        return {"query": _own(attributes.get("reranker.query")), "documents": documents}
    value = _openinference_value(attributes, "input")
    if value is None and kind == "TOOL":  # some instrumentations put the call's arguments here
        return _decoded(attributes.get("tool.parameters"))
    if value is None and kind == "EMBEDDING":
        texts = [_own(e.get("embedding.text")) for e in _indexed(attributes, "embedding.embeddings")]
        return {"input": texts} if any(texts) else None
    return value


def _openinference_outputs(attributes: Attributes) -> Any:
    kind = _openinference_kind(attributes)
    if kind == "RETRIEVER" and (documents := _openinference_documents(attributes, "retrieval.documents")):
        return documents
    if kind == "RERANKER" and (documents := _openinference_documents(attributes, "reranker.output_documents")):
        return documents
    if messages := [_openinference_message(m) for m in _indexed(attributes, "llm.output_messages")]:
        reason = attributes.get("llm.finish_reason")
        return _completion(messages, [reason] if reason else None)
    return _openinference_value(attributes, "output")


# ---------------------------------------------------------------- OpenTelemetry GenAI


def _is_genai(attributes: Attributes) -> bool:
    return any(key.startswith("gen_ai.") for key in attributes)


def _genai_type(name: str, attributes: Attributes) -> str | None:
    operation = attributes.get("gen_ai.operation.name")
    if not isinstance(operation, str) or not operation:
        if not _is_genai(attributes):
            return None
        if "gen_ai.tool.name" in attributes:
            return "TOOL"
        operation = name.split(" ", 1)[0] if name else ""  # GenAI span names: "chat gpt-4", "execute_tool x"
    if operation in MLFLOW_SPAN_TYPES:
        return operation
    return GENAI_OPERATIONS.get(operation)


def _part_text(part: Mapping[str, Any]) -> str:
    """What a non-text part shows as text: a placeholder for media, JSON for the unknown."""
    kind = part.get("type")
    if kind == "uri":
        return f"[{part.get('modality') or 'file'}: {part.get('uri', '')}]"
    if kind == "blob":
        return f"[{part.get('modality') or 'data'} {part.get('mime_type') or ''}]".replace(" ]", "]")
    if kind == "file":
        return f"[{part.get('modality') or 'file'} {part.get('file_id', '')}]".replace(" ]", "]")
    return _text(part)


def _genai_message(raw: Any) -> list[Message]:
    """One GenAI message (``{"role", "parts"}``) as OpenAI messages; a tool response is a message each."""
    if not isinstance(raw, dict):
        return [_message("user", _text(raw))] if raw not in (None, "") else []
    role = raw.get("role") or "user"
    if "parts" not in raw:  # already an OpenAI-style message (some instrumentations send those)
        return [_message(role, raw.get("content"), raw.get("tool_calls"))]
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    responses: list[Message] = []
    reasoning: list[str] = []
    parts = raw.get("parts")
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, dict):
            texts.append(_text(part))
        elif part.get("type") == "text":
            texts.append(_text(part.get("content")))
        elif part.get("type") == "reasoning":
            reasoning.append(_text(part.get("content")))
        elif part.get("type") in ("tool_call", "server_tool_call"):
            arguments = part.get("arguments", part.get("server_tool_call"))
            calls.append(_tool_call(part.get("id"), part.get("name"), arguments))
        elif part.get("type") in ("tool_call_response", "server_tool_call_response"):
            result = part.get("response", part.get("server_tool_call_response"))
            responses.append(_message("tool", _text(result), tool_call_id=part.get("id")))
        else:
            texts.append(_part_text(part))
    messages: list[Message] = []
    if texts or calls or reasoning or not responses:
        content = "\n\n".join(t for t in texts if t) or None
        extra = {"reasoning_content": "\n\n".join(reasoning) or None, "finish_reason": raw.get("finish_reason")}
        messages.append(_message(role, content, calls, name=raw.get("name"), **extra))
    return messages + responses


def _genai_messages(value: Any) -> list[Message]:
    decoded = _json(value)
    if not isinstance(decoded, list):
        return []
    return [message for raw in decoded for message in _genai_message(raw)]


def _system_messages(value: Any) -> list[Message]:
    """``gen_ai.system_instructions``: a list of parts (or a plain string) → one system message."""
    decoded = _json(value)
    if isinstance(decoded, str):
        return [_message("system", decoded)] if decoded else []
    if not isinstance(decoded, list):
        return []
    texts = [_text(p.get("content")) if isinstance(p, dict) else _text(p) for p in decoded]
    text = "\n\n".join(t for t in texts if t)
    return [_message("system", text)] if text else []


def _flattened_messages(attributes: Attributes, prefix: str) -> list[Message]:
    """OpenLLMetry's ``gen_ai.prompt.N.role/content`` and ``…tool_calls.M.name/arguments``."""
    messages = []
    for flat in _indexed(attributes, prefix):
        content = _own(flat.get("content"))
        if isinstance(content, str) and content.lstrip().startswith("["):
            decoded = _json(content)  # content blocks, JSON-encoded
            content = decoded if isinstance(decoded, list) else content
        calls = [_tool_call(c.get("id"), c.get("name"), c.get("arguments")) for c in _indexed(flat, "tool_calls")]
        extra = {"tool_call_id": flat.get("tool_call_id"), "finish_reason": flat.get("finish_reason")}
        messages.append(_message(flat.get("role"), content, calls, **extra))
    return messages


def _event_messages(events: list[Mapping[str, Any]], wanted: str) -> list[Message]:
    """Messages logged as span events: ``gen_ai.user.message`` … (inputs) or ``gen_ai.choice`` (outputs)."""
    messages: list[Message] = []
    for event in events:
        event_name = event.get("name")
        attrs = event.get("attributes") or {}
        if not isinstance(attrs, Mapping):
            continue
        if wanted == "inputs" and event_name in MESSAGE_EVENTS:
            role = _decoded(attrs.get("role")) or MESSAGE_EVENTS[event_name]
            calls = _decoded(attrs.get("tool_calls")) if attrs.get("tool_calls") else None
            messages.append(_message(role, _decoded(attrs.get("content")), calls, tool_call_id=attrs.get("id")))
        elif wanted == "inputs" and event_name == "gen_ai.content.prompt":
            messages.extend(_genai_messages(attrs.get("gen_ai.prompt")))
        elif wanted == "outputs" and event_name == "gen_ai.choice":
            body = _decoded(attrs.get("message")) if attrs.get("message") else attrs
            body = body if isinstance(body, Mapping) else {"content": body}
            calls = _decoded(body.get("tool_calls")) if body.get("tool_calls") else None
            role = _decoded(body.get("role")) or "assistant"
            content = _decoded(body.get("content"))
            messages.append(_message(role, content, calls, finish_reason=_own(attrs.get("finish_reason"))))
        elif wanted == "outputs" and event_name == "gen_ai.content.completion":
            messages.extend(_genai_messages(attrs.get("gen_ai.completion")))
    return messages


def _genai_inputs(attributes: Attributes, events: list[Mapping[str, Any]]) -> Any:
    system = _system_messages(attributes.get("gen_ai.system_instructions"))
    messages = (
        _genai_messages(attributes.get("gen_ai.input.messages"))
        or _flattened_messages(attributes, "gen_ai.prompt")
        or _event_messages(events, "inputs")
    )
    if messages or system:
        return {"messages": system + messages}
    if "gen_ai.tool.call.arguments" in attributes:
        return _json(attributes["gen_ai.tool.call.arguments"])
    if query := attributes.get("gen_ai.retrieval.query.text"):
        return {"query": query}
    return None


def _genai_outputs(attributes: Attributes, events: list[Mapping[str, Any]]) -> Any:
    messages = (
        _genai_messages(attributes.get("gen_ai.output.messages"))
        or _flattened_messages(attributes, "gen_ai.completion")
        or _event_messages(events, "outputs")
    )
    if messages:
        reasons = _json(attributes.get("gen_ai.response.finish_reasons"))
        return _completion(messages, reasons if isinstance(reasons, list) else None)
    if "gen_ai.tool.call.result" in attributes:
        return _decoded(attributes["gen_ai.tool.call.result"])
    documents = _json(attributes.get("gen_ai.retrieval.documents"))
    if isinstance(documents, list) and documents:
        return [_genai_document(d) for d in documents]
    return None


def _genai_document(raw: Any) -> dict[str, Any]:
    """One of ``gen_ai.retrieval.documents`` (``{"id", "score", …}``; text under ``content`` if any)."""
    if not isinstance(raw, dict):
        return _document(raw, None, None, None)
    rest = {k: v for k, v in raw.items() if k not in ("id", "score", "content", "text", "page_content", "metadata")}
    metadata = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    content = raw.get("content", raw.get("page_content", raw.get("text")))
    return _document(content, raw.get("id"), raw.get("score"), {**rest, **metadata})


# ---------------------------------------------------------------- Traceloop / OpenLLMetry


def _traceloop_type(attributes: Attributes) -> str | None:
    kind = attributes.get("traceloop.span.kind")
    if isinstance(kind, str) and kind in TRACELOOP_KINDS:
        return TRACELOOP_KINDS[kind]
    request_type = attributes.get("llm.request.type")
    return TRACELOOP_REQUEST_TYPES.get(request_type) if isinstance(request_type, str) else None
