"""Demo and benchmark traces, generated in MLflow 3's ``Trace.to_json()`` format.

The demo goes through the real importer (``parse_document`` + ``store_traces``), so it exercises
the same code path as a file written by MLflow. Everything is derived from fixed seeds: the same
trace ids come back on every run, so re-seeding updates the demo instead of duplicating it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .demo_scenarios import CLOSING_TURNS, GENERAL_DOCUMENTS, SCENARIOS, TOOL_ERRORS, Scenario

__all__ = ["DEMO_EXPERIMENT", "SCENARIOS", "SpanBuilder", "build_trace", "demo_documents"]

DEMO_EXPERIMENT = "Demo: health insurance assistant"
DEMO_TRACE_COUNT = 64
DEMO_DAYS = 14
MS = 1_000_000  # nanoseconds in a millisecond
OPENAI_MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-sonnet-4-5"
JUDGE_SOURCE = {"source_type": "LLM_JUDGE", "source_id": f"openai:/{OPENAI_MODEL}"}
SYSTEM_PROMPT = "You are a careful health-insurance support assistant. Answer only from the policy excerpts."

# ---------------------------------------------------------------------------------------------- ids and times


def b64_id(seed: str, nbytes: int) -> str:
    """A stable OpenTelemetry id, base64-encoded as in MLflow 3's ``to_json``."""
    return base64.b64encode(hashlib.sha256(seed.encode()).digest()[:nbytes]).decode()


def hex_id(seed: str, nbytes: int) -> str:
    return hashlib.sha256(seed.encode()).digest()[:nbytes].hex()


def trace_id_for(seed: str) -> str:
    return "tr-" + hex_id("trace:" + seed, 16)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch_ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def member_id(number: int) -> str:
    return "member-" + hex_id(f"member:{number}", 3)


# ---------------------------------------------------------------------------------------------- spans


def exception_event(name: str, error: tuple[str, str], at_ns: int) -> dict[str, Any]:
    kind, message = error
    stacktrace = (
        "Traceback (most recent call last):\n"
        '  File "/srv/assistant/agent/tools.py", line 88, in call_tool\n'
        "    return TOOLS[name](**arguments)\n"
        f'  File "/srv/assistant/agent/tools.py", line 142, in {name}\n'
        f"    raise {kind}({message!r})\n"
        f"{kind}: {message}"
    )
    return {
        "name": "exception",
        "time_unix_nano": at_ns,
        "attributes": {"exception.type": kind, "exception.message": message, "exception.stacktrace": stacktrace},
    }


@dataclass
class SpanBuilder:
    """Collects the spans of one trace in MLflow 3's ``to_json`` span layout."""

    seed: str
    start_ns: int
    spans: list[dict[str, Any]] = field(default_factory=list)

    @property
    def otel_trace_id(self) -> str:
        return b64_id("otel:" + self.seed, 16)

    def add(
        self,
        name: str,
        span_type: str,
        *,
        parent: str | None,
        offset_ms: float,
        duration_ms: float,
        inputs: Any,
        outputs: Any = None,
        error: tuple[str, str] | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> str:
        """Append a span; returns its (base64) span id for children to point at."""
        span_id = b64_id(f"span:{self.seed}:{len(self.spans)}", 8)
        start = self.start_ns + int(offset_ms * MS)
        end = start + int(duration_ms * MS)
        attrs = {
            "mlflow.traceRequestId": json.dumps(trace_id_for(self.seed)),
            "mlflow.spanType": json.dumps(span_type),
            "mlflow.spanInputs": json.dumps(inputs),
        }
        if outputs is not None:
            attrs["mlflow.spanOutputs"] = json.dumps(outputs)
        attrs.update({key: json.dumps(value) for key, value in (attributes or {}).items()})
        self.spans.append(
            {
                "trace_id": self.otel_trace_id,
                "span_id": span_id,
                "parent_span_id": parent,
                "name": name,
                "kind": "SPAN_KIND_INTERNAL",
                "start_time_unix_nano": start,
                "end_time_unix_nano": end,
                "events": [exception_event(name, error, end - 1000)] if error else [],
                "status": {
                    "code": "STATUS_CODE_ERROR" if error else "STATUS_CODE_OK",
                    "message": f"{error[0]}: {error[1]}" if error else "",
                },
                "attributes": attrs,
            }
        )
        return span_id


def chat_completion(text: str | None, tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An OpenAI chat completion, as MLflow's OpenAI autolog records it."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-demo",
        "object": "chat.completion",
        "model": OPENAI_MODEL,
        "choices": [{"index": 0, "finish_reason": "tool_calls" if tool_calls else "stop", "message": message}],
    }


def anthropic_message(text: str) -> dict[str, Any]:
    """An Anthropic Messages API response with content blocks."""
    return {
        "id": "msg_demo",
        "type": "message",
        "role": "assistant",
        "model": ANTHROPIC_MODEL,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
    }


def anthropic_user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": text}]}


# ---------------------------------------------------------------------------------------------- trace envelope


def to_json(
    builder: SpanBuilder,
    *,
    name: str,
    request_time: datetime,
    inputs: Any,
    outputs: Any,
    state: str = "OK",
    user: str = "",
    session: str = "",
    tags: dict[str, str] | None = None,
    assessments: list[dict[str, Any]] | None = None,
    model_id: str = "",
) -> dict[str, Any]:
    """The ``{"info": …, "data": {"spans": …}}`` document MLflow 3 writes for one trace."""
    trace_id = trace_id_for(builder.seed)
    root = builder.spans[0]
    request = json.dumps(inputs)
    response = json.dumps(outputs) if outputs is not None else ""
    metadata = {
        "mlflow.trace_schema.version": "3",
        "mlflow.traceInputs": request[:1000],
        "mlflow.traceOutputs": response[:1000],
        "mlflow.source.name": "assistant/app.py",
        "mlflow.source.type": "LOCAL",
        "mlflow.trace.user": user or member_id(0),
    }
    if session:
        metadata["mlflow.trace.session"] = session
    if model_id:
        metadata["mlflow.modelId"] = model_id
    return {
        "info": {
            "trace_id": trace_id,
            "trace_location": {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": "42"}},
            "request_time": iso(request_time),
            "execution_duration_ms": (root["end_time_unix_nano"] - root["start_time_unix_nano"]) // MS,
            "state": state,
            "trace_metadata": metadata,
            "tags": {"mlflow.traceName": name, **(tags or {})},
            "request_preview": request[:1000],
            "response_preview": response[:1000],
            "assessments": [dict(a, trace_id=trace_id) for a in assessments or []],
        },
        "data": {"spans": builder.spans},
    }


# ---------------------------------------------------------------------------------------------- assessments


def feedback(
    seed: str, name: str, value: Any, *, source: dict[str, str], when: datetime, rationale: str = "", **extra: Any
) -> dict[str, Any]:
    """One Feedback assessment in MLflow's JSON; its id is stable for a given seed, name and source."""
    return {
        "assessment_id": "a-" + hex_id(f"{name}:{source['source_type']}:{seed}", 16),
        "assessment_name": name,
        "source": source,
        "create_time": iso(when),
        "last_update_time": iso(when),
        "feedback": {"value": value},
        "rationale": rationale,
        "valid": True,
        **extra,
    }


def judge_assessments(
    seed: str, rng: random.Random, when: datetime, *, grounded: bool, overridden: bool = False
) -> list[dict[str, Any]]:
    """LLM-judge and code feedback for a RAG answer; when ``overridden``, a human corrects the relevance judge."""
    relevant = grounded or rng.random() < 0.5
    score = rng.choice([4, 5]) if grounded else rng.choice([1, 2, 3])
    rows = [
        feedback(
            seed,
            "relevance",
            "yes" if relevant else "no",
            source=JUDGE_SOURCE,
            when=when,
            rationale="The answer addresses the member's question."
            if relevant
            else "The answer drifts from what the member asked.",
        ),
        feedback(
            seed,
            "groundedness",
            score,
            source=JUDGE_SOURCE,
            when=when,
            rationale=f"{score} of 5: "
            + ("every claim appears in the retrieved policy text." if grounded else "a claim is not in the documents."),
        ),
        feedback(
            seed,
            "correct",
            grounded,
            source=JUDGE_SOURCE,
            when=when,
            rationale="Matches the policy documents." if grounded else "Adds a limit the policy does not state.",
        ),
        feedback(
            seed, "answer_length_ok", True, source={"source_type": "CODE", "source_id": "checks.length"}, when=when
        ),
    ]
    if overridden:
        rows[0]["valid"] = False  # kept, marked as replaced: nothing is overwritten
        human = {"source_type": "HUMAN", "source_id": "dr.ames@example-health.com"}
        rows.append(
            feedback(
                seed,
                "relevance",
                "no" if relevant else "yes",
                source=human,
                when=when + timedelta(hours=20),
                rationale="Checked against the policy myself: the judge got this one wrong.",
                overrides=rows[0]["assessment_id"],
            )
        )
    return rows


# ---------------------------------------------------------------------------------------------- demo traces


def retrieved_documents(scenario: Scenario, rng: random.Random) -> list[dict[str, Any]]:
    """3 to 6 documents: the scenario's own, then general handbook pages, by decreasing score."""
    wanted = rng.randint(max(3, len(scenario.documents)), 6)
    extra = rng.sample(GENERAL_DOCUMENTS, wanted - len(scenario.documents))
    score = rng.uniform(0.86, 0.95)
    documents = []
    for rank, (uri, text) in enumerate([*scenario.documents, *extra]):
        score -= rng.uniform(0.02, 0.09) if rank else 0
        documents.append(
            {
                "page_content": text,
                "metadata": {"doc_uri": uri, "chunk_id": f"{hex_id(uri, 2)}-{rank}", "score": round(score, 3)},
                "id": "doc-" + hex_id(uri, 4),
            }
        )
    return documents


@dataclass(frozen=True)
class AppVersion:
    """A version of the assistant, as MLflow links it: ``set_active_model`` gives traces the
    LoggedModel id in metadata ``mlflow.modelId``, and the app tags ``app_version``."""

    version: str
    grounded_rate: float  # how often its RAG answers stay within the documents

    @property
    def model_id(self) -> str:
        return "m-" + hex_id(f"support-assistant:{self.version}", 16)


# Upgraded halfway through the demo period; the newer prompt invents fewer policy limits.
APP_VERSIONS = (AppVersion("1.3.2", 0.68), AppVersion("1.4.0", 0.84))


def app_version_at(when: datetime, now: datetime) -> AppVersion:
    return APP_VERSIONS[1] if when > now - timedelta(days=DEMO_DAYS / 2) else APP_VERSIONS[0]


def release_tags(when: datetime, now: datetime) -> dict[str, str]:
    """Which version answered, as tags (the model id goes into metadata, see ``to_json``)."""
    return {"app_version": app_version_at(when, now).version, "environment": "production"}


def _rag_generation(question: str, answer: str, context: str, *, anthropic: bool) -> tuple[Any, Any]:
    """Inputs and outputs of the generation call, OpenAI-style or with Anthropic content blocks."""
    system = f"{SYSTEM_PROMPT}\n\n{context}"
    if anthropic:
        inputs = {
            "model": ANTHROPIC_MODEL,
            "max_tokens": 1024,
            "system": system,
            "messages": [anthropic_user(question)],
        }
        return inputs, anthropic_message(answer)
    messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    return {"model": OPENAI_MODEL, "temperature": 0.1, "messages": messages}, chat_completion(answer)


def rag_trace(
    index: int, scenario: Scenario, when: datetime, now: datetime, rng: random.Random, *, anthropic: bool = False
) -> dict[str, Any]:
    """Embed, retrieve 3-6 policy excerpts, generate; a quarter of the answers add an unsupported claim."""
    seed = f"demo-rag-{index}"
    builder = SpanBuilder(seed, epoch_ns(when))
    grounded = rng.random() < app_version_at(when, now).grounded_rate
    answer = scenario.answer if grounded else scenario.answer + " You can also claim this twice a year."
    user_message = anthropic_user(scenario.question) if anthropic else {"role": "user", "content": scenario.question}
    question = {"messages": [user_message]}
    final = anthropic_message(answer) if anthropic else chat_completion(answer)
    total = rng.uniform(900, 2600)
    root = builder.add(
        "support_rag", "CHAIN", parent=None, offset_ms=0, duration_ms=total, inputs=question, outputs=final
    )
    builder.add(
        "embed_query",
        "EMBEDDING",
        parent=root,
        offset_ms=5,
        duration_ms=rng.uniform(25, 60),
        inputs={"input": scenario.question, "model": "text-embedding-3-small"},
        outputs={"dimensions": 1536},
    )
    documents = retrieved_documents(scenario, rng)
    builder.add(
        "search_policies",
        "RETRIEVER",
        parent=root,
        offset_ms=70,
        duration_ms=rng.uniform(60, 180),
        inputs={"query": scenario.question, "top_k": len(documents)},
        outputs=documents,
    )
    context = "\n\n".join(d["page_content"] for d in documents)
    llm_inputs, llm_outputs = _rag_generation(scenario.question, answer, context, anthropic=anthropic)
    builder.add(
        "generate_answer",
        "CHAT_MODEL",
        parent=root,
        offset_ms=260,
        duration_ms=total - 280,
        inputs=llm_inputs,
        outputs=llm_outputs,
        attributes={"mlflow.chat.tokenUsage": {"input_tokens": 380 + len(context) // 4, "output_tokens": 70}},
    )
    assessments = []
    if index % 2 == 0:
        judged_at = when + timedelta(minutes=5)
        assessments = judge_assessments(seed, rng, judged_at, grounded=grounded, overridden=index % 10 == 0)
    return to_json(
        builder,
        name="support_rag",
        request_time=when,
        inputs=question,
        outputs=final,
        user=member_id(rng.randrange(12)),
        tags=release_tags(when, now),
        model_id=app_version_at(when, now).model_id,
        assessments=assessments,
    )


@dataclass(frozen=True)
class ChatTurn:
    """One turn of a multi-turn conversation: what came before, then this question and its answer."""

    conversation: int
    number: int
    history: list[tuple[str, str]]
    question: str
    answer: str

    @property
    def session_id(self) -> str:
        return "sess-" + hex_id(f"conversation:{self.conversation}", 6)

    def messages(self) -> list[dict[str, str]]:
        messages = [{"role": "system", "content": "You are a friendly health-insurance support assistant."}]
        for asked, answered in self.history:
            messages += [{"role": "user", "content": asked}, {"role": "assistant", "content": answered}]
        return [*messages, {"role": "user", "content": self.question}]


def chat_turn(conversation: int, number: int) -> ChatTurn:
    """Turn ``number`` of conversation ``conversation``: a scenario's question, its follow-up, a closing turn."""
    scenario = SCENARIOS[(conversation * 4 + 1) % len(SCENARIOS)]
    turns = [
        (scenario.question, scenario.answer),
        (scenario.follow_up, scenario.follow_up_answer),
        CLOSING_TURNS[conversation % len(CLOSING_TURNS)],
    ]
    question, answer = turns[number]
    return ChatTurn(conversation, number, turns[:number], question, answer)


def chat_trace(index: int, turn: ChatTurn, when: datetime, now: datetime, rng: random.Random) -> dict[str, Any]:
    seed = f"demo-chat-{index}"
    builder = SpanBuilder(seed, epoch_ns(when))
    inputs = {"messages": turn.messages()}
    total = rng.uniform(700, 1800)
    reply = chat_completion(turn.answer)
    root = builder.add(
        "support_chat", "AGENT", parent=None, offset_ms=0, duration_ms=total, inputs=inputs, outputs=reply
    )
    builder.add(
        "load_history",
        "MEMORY",
        parent=root,
        offset_ms=2,
        duration_ms=rng.uniform(4, 15),
        inputs={"session_id": turn.session_id},
        outputs={"turns": turn.number},
    )
    builder.add(
        "chat.completions.create",
        "CHAT_MODEL",
        parent=root,
        offset_ms=20,
        duration_ms=total - 40,
        inputs={**inputs, "model": OPENAI_MODEL},
        outputs=reply,
    )
    return to_json(
        builder,
        name="support_chat",
        request_time=when,
        inputs=inputs,
        outputs=reply,
        user=member_id(100 + turn.conversation),
        session=turn.session_id,
        tags=release_tags(when, now),
        model_id=app_version_at(when, now).model_id,
    )


def tool_schema(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    properties = {key: {"type": "integer" if isinstance(v, int) else "string"} for key, v in arguments.items()}
    parameters = {"type": "object", "properties": properties, "required": list(arguments)}
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


def scenario_tool(scenario: Scenario) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The scenario's own tool, or a policy search returning its documents."""
    if scenario.tool is not None:
        return scenario.tool
    results = [{"doc_uri": uri, "excerpt": text[:80]} for uri, text in scenario.documents]
    return "search_policy_docs", {"query": scenario.question, "top_k": 3}, {"results": results}


def agent_trace(
    index: int, scenario: Scenario, when: datetime, now: datetime, rng: random.Random, *, fail: bool = False
) -> dict[str, Any]:
    """Plan (tool call), run the tool, answer; when ``fail``, the tool raises and the trace ends in ERROR."""
    seed = f"demo-agent-{index}"
    builder = SpanBuilder(seed, epoch_ns(when))
    tool_name, arguments, result = scenario_tool(scenario)
    error = None
    if fail:
        kind, message = rng.choice(TOOL_ERRORS)
        error = (kind, message.format(tool=tool_name))
    question = {"messages": [{"role": "user", "content": scenario.question}]}
    total = rng.uniform(1500, 4000)
    final = None if fail else chat_completion(scenario.answer)
    root = builder.add(
        "member_agent",
        "AGENT",
        parent=None,
        offset_ms=0,
        duration_ms=total,
        inputs=question,
        outputs=final,
        error=error,
    )
    call = {"id": f"call_{hex_id(seed, 6)}", "type": "function", "function": {"name": tool_name}}
    call["function"]["arguments"] = json.dumps(arguments)
    builder.add(
        "plan",
        "CHAT_MODEL",
        parent=root,
        offset_ms=10,
        duration_ms=400,
        inputs={**question, "model": OPENAI_MODEL, "tools": [tool_schema(tool_name, arguments)]},
        outputs=chat_completion(None, [call]),
    )
    tool_ms = 3000.0 if fail else rng.uniform(80, 900)
    builder.add(
        tool_name,
        "TOOL",
        parent=root,
        offset_ms=420,
        duration_ms=min(tool_ms, total - 430),
        inputs=arguments,
        outputs=None if fail else result,
        error=error,
    )
    if not fail:
        messages = [
            *question["messages"],
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": json.dumps(result)},
        ]
        builder.add(
            "answer",
            "CHAT_MODEL",
            parent=root,
            offset_ms=1400,
            duration_ms=total - 1450,
            inputs={"messages": messages, "model": OPENAI_MODEL},
            outputs=final,
        )
    tool_check = feedback(
        seed,
        "tool_call_succeeded",
        not fail,
        source={"source_type": "CODE", "source_id": "checks.tools"},
        when=when + timedelta(minutes=5),
        rationale=f"{error[0]} in {tool_name}" if error else "",
    )
    return to_json(
        builder,
        name="member_agent",
        request_time=when,
        inputs=question,
        outputs=final,
        state="ERROR" if fail else "OK",
        user=member_id(rng.randrange(12)),
        tags=release_tags(when, now),
        model_id=app_version_at(when, now).model_id,
        assessments=[tool_check],
    )


def chat_slot(position: int) -> tuple[int, int]:
    """Chat slots grouped into conversations of three turns, then two: ``(conversation, turn)``."""
    block, offset = divmod(position, 5)
    return (2 * block, offset) if offset < 3 else (2 * block + 1, offset - 3)


def demo_documents(now: datetime | None = None, count: int = DEMO_TRACE_COUNT) -> list[dict[str, Any]]:
    """``count`` varied traces over the last 14 days: RAG (some Anthropic), multi-turn chat, tool agents, errors."""
    now = (now or datetime.now(tz=UTC)).replace(microsecond=0)
    rng = random.Random(20261124)
    start = now - timedelta(days=DEMO_DAYS)
    conversation_starts: dict[int, datetime] = {}
    documents = []
    chats = 0
    for index in range(count):
        scenario = SCENARIOS[index % len(SCENARIOS)]
        slot = timedelta(days=DEMO_DAYS) * index / count
        when = start + slot + timedelta(milliseconds=rng.randrange(15 * 60 * 1000))
        kind = index % 8
        if kind in (0, 1, 2, 5):
            documents.append(rag_trace(index, scenario, when, now, rng, anthropic=kind == 5))
        elif kind in (3, 6):
            conversation, turn = chat_slot(chats)
            chats += 1
            first = conversation_starts.setdefault(conversation, when)
            turn_time = first + timedelta(seconds=70 * turn + rng.randrange(40))
            documents.append(chat_trace(index, chat_turn(conversation, turn), turn_time, now, rng))
        else:
            documents.append(agent_trace(index, scenario, when, now, rng, fail=index % 16 == 7))
    return documents


# ---------------------------------------------------------------------------------------------- benchmarks


def _bench_documents(seed: int, index: int, count: int) -> list[dict[str, Any]]:
    return [
        {
            "page_content": f"Document {seed}-{index}-{d}. " + "text " * 20,
            "metadata": {"doc_uri": f"https://docs.example.com/{index}/{d}.html", "chunk_id": f"{index}-{d}"},
            "id": f"d{index}-{d}",
        }
        for d in range(count)
    ]


def build_trace(*, n_spans: int, payload_bytes: int = 1000, seed: int = 0, n_documents: int = 0) -> dict[str, Any]:
    """One synthetic MLflow 3 trace for benchmarks and tests.

    ``n_spans`` spans under an AGENT root (CHAIN/LLM/TOOL children hung on random earlier spans, so the
    tree is both wide and deep), each with about ``payload_bytes`` of inputs+outputs; ``n_documents``
    retriever documents are spread over RETRIEVER spans (one every 20 spans).
    """
    rng = random.Random(seed)
    builder = SpanBuilder(f"bench-{seed}", 1_795_000_000_000_000_000 + seed * 10**9)
    pad = "x" * max(payload_bytes // 2 - 30, 1)
    question = {"question": f"bench question {seed}"}
    root = builder.add(
        "agent",
        "AGENT",
        parent=None,
        offset_ms=0,
        duration_ms=n_spans * 2 + 10,
        inputs={**question, "pad": pad},
        outputs={"answer": "ok", "pad": pad},
    )
    parents = [root]
    retrievers = max(1, n_spans // 20) if n_documents else 0
    per_retriever = -(-n_documents // retrievers) if retrievers else 0
    documents_left = n_documents
    for index in range(1, n_spans):
        parent = parents[rng.randrange(len(parents))]
        if documents_left > 0 and index % 20 == 1:
            count = min(per_retriever, documents_left)
            documents_left -= count
            outputs = _bench_documents(seed, index, count)
            builder.add(
                f"retrieve_{index}",
                "RETRIEVER",
                parent=parent,
                offset_ms=index,
                duration_ms=1,
                inputs={"query": "q"},
                outputs=outputs,
            )
            continue
        span_id = builder.add(
            f"step_{index}",
            ("CHAIN", "LLM", "TOOL")[index % 3],
            parent=parent,
            offset_ms=index,
            duration_ms=1.5,
            inputs={"step": index, "pad": pad},
            outputs={"result": index, "pad": pad},
        )
        if len(parents) < 50:
            parents.append(span_id)
    when = datetime.fromtimestamp(builder.start_ns / 1e9, tz=UTC)
    return to_json(builder, name="agent", request_time=when, inputs=question, outputs={"answer": "ok"})
