"""Demo and benchmark traces, generated in MLflow 3's ``Trace.to_json()`` format.

The demo goes through the real importer (``parse_document`` + ``store_traces``), so it exercises
the same code path as a file written by MLflow.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

DEMO_EXPERIMENT = "Demo: health insurance assistant"
MS = 1_000_000  # nanoseconds


@dataclass
class Scenario:
    question: str
    answer: str
    documents: list[tuple[str, str]]  # (doc_uri, text)
    tool: tuple[str, dict[str, Any], dict[str, Any]] | None = None  # (name, args, result)
    follow_up: str = ""


SCENARIOS = [
    Scenario(
        "Is physiotherapy after knee surgery covered by my plan?",
        "Yes. Your Silver plan covers up to 20 physiotherapy sessions per year after surgery, with a 20% co-pay. "
        "Ask your surgeon for a referral first; without it the sessions are not reimbursed.",
        [
            (
                "https://policies.example-health.com/silver/physio.html",
                "Physiotherapy: up to 20 sessions per calendar year following a surgical procedure. Co-insurance 20%.",
            ),
            (
                "https://policies.example-health.com/silver/referrals.html",
                "Rehabilitation services require a written referral from the treating physician.",
            ),
            (
                "https://policies.example-health.com/faq/knee.html",
                "Knee replacement is covered at 80% after the deductible for in-network hospitals.",
            ),
        ],
    ),
    Scenario(
        "Can I take ibuprofen while on warfarin?",
        "It is best to avoid ibuprofen with warfarin: together they raise the risk of bleeding. Paracetamol is usually "
        "the safer choice for pain, but please check with your doctor or pharmacist before changing medicines.",
        [
            (
                "https://formulary.example-health.com/warfarin.html",
                "Warfarin interactions: NSAIDs such as ibuprofen and naproxen increase bleeding risk and should be avoided.",
            ),
            (
                "https://formulary.example-health.com/paracetamol.html",
                "Paracetamol (acetaminophen) is the preferred analgesic for patients on anticoagulants, at usual doses.",
            ),
            (
                "https://formulary.example-health.com/ibuprofen.html",
                "Ibuprofen: non-steroidal anti-inflammatory drug. Contraindicated with anticoagulants unless supervised.",
            ),
        ],
    ),
    Scenario(
        "How do I get reimbursed for an emergency visit abroad?",
        "Send the itemised hospital invoice, proof of payment and the discharge summary through the app within 90 days. "
        "Emergency care abroad is reimbursed up to the amount your plan would pay at home.",
        [
            (
                "https://policies.example-health.com/travel/emergency.html",
                "Emergency treatment abroad is reimbursed up to domestic tariffs. Claims within 90 days.",
            ),
            (
                "https://policies.example-health.com/claims/documents.html",
                "Required documents: itemised invoice, proof of payment, medical report or discharge summary.",
            ),
        ],
    ),
    Scenario(
        "What is my deductible for 2026?",
        "Your 2026 deductible is $1,500 for individual coverage. You have met $420 of it so far this year.",
        [
            (
                "https://policies.example-health.com/silver/deductible.html",
                "Silver plan deductible 2026: $1,500 individual, $3,000 family.",
            )
        ],
        tool=(
            "get_member_balance",
            {"member_id": "M-20418", "year": 2026},
            {"deductible": 1500, "met": 420, "currency": "USD"},
        ),
    ),
    Scenario(
        "Is the flu vaccine free at my pharmacy?",
        "Yes, the seasonal flu vaccine is covered at 100% at in-network pharmacies, with no co-pay.",
        [
            (
                "https://policies.example-health.com/preventive/vaccines.html",
                "Preventive vaccines (influenza, COVID-19, shingles for 50+) are covered at 100% in network.",
            ),
            (
                "https://pharmacies.example-health.com/network.html",
                "Most national pharmacy chains are in network. Check the directory before your visit.",
            ),
        ],
    ),
    Scenario(
        "My claim for an MRI was denied. Why?",
        "The MRI claim was denied because it was done without prior authorisation. You can appeal within 180 days; "
        "ask your doctor to send the medical necessity letter with the appeal.",
        [
            (
                "https://policies.example-health.com/silver/imaging.html",
                "Advanced imaging (MRI, CT, PET) requires prior authorisation except in emergencies.",
            ),
            (
                "https://policies.example-health.com/appeals.html",
                "Members may appeal a denied claim within 180 days of the decision.",
            ),
        ],
        tool=(
            "get_claim_status",
            {"claim_id": "C-88412"},
            {"status": "DENIED", "reason": "NO_PRIOR_AUTH", "amount": 1840.0},
        ),
    ),
    Scenario(
        "Does my plan cover therapy for anxiety?",
        "Yes. Outpatient mental health visits are covered like any specialist visit: $30 co-pay per session, "
        "no limit on the number of sessions when they are medically necessary.",
        [
            (
                "https://policies.example-health.com/silver/mental-health.html",
                "Outpatient behavioural health: specialist co-pay applies ($30). No annual visit limit.",
            ),
            (
                "https://policies.example-health.com/parity.html",
                "Mental health benefits are provided at parity with medical benefits.",
            ),
        ],
    ),
    Scenario(
        "How much will a generic statin cost me per month?",
        "Generic atorvastatin is a Tier 1 drug on your plan: $10 for a 30-day supply at a retail pharmacy, "
        "or $25 for 90 days by mail order.",
        [
            (
                "https://formulary.example-health.com/tiers.html",
                "Tier 1 generics: $10 retail (30 days), $25 mail order (90 days).",
            )
        ],
        tool=("lookup_formulary", {"drug": "atorvastatin"}, {"tier": 1, "retail_30": 10, "mail_90": 25}),
    ),
    Scenario(
        "Can I add my newborn to my plan?",
        "Yes. Add your baby within 30 days of birth through the app or by phone; coverage then starts from the date of birth.",
        [
            (
                "https://policies.example-health.com/enrolment/life-events.html",
                "Newborns must be enrolled within 30 days of birth; coverage is retroactive to birth.",
            )
        ],
        follow_up="What documents do I need for that?",
    ),
    Scenario(
        "Is a second opinion before surgery covered?",
        "Yes, a second opinion from an in-network specialist is covered with your usual specialist co-pay.",
        [
            (
                "https://policies.example-health.com/silver/second-opinion.html",
                "Second surgical opinions are covered at the specialist co-pay when in network.",
            )
        ],
    ),
    Scenario(
        "What should I do if I think I'm having a heart attack?",
        "Call emergency services (911) right away. Do not drive yourself. Emergency care is always covered, "
        "in or out of network, without prior authorisation.",
        [
            (
                "https://policies.example-health.com/emergency.html",
                "Emergency services are covered without prior authorisation, in or out of network.",
            )
        ],
    ),
    Scenario(
        "Can I see a dermatologist without a referral?",
        "On your Silver PPO plan you can see an in-network dermatologist without a referral; the specialist co-pay of $30 applies.",
        [
            (
                "https://policies.example-health.com/silver/specialists.html",
                "PPO members may self-refer to in-network specialists.",
            ),
            (
                "https://policies.example-health.com/hmo/specialists.html",
                "HMO members need a referral from their primary care physician.",
            ),
        ],
    ),
]


def b64_id(seed: str, nbytes: int) -> str:
    return base64.b64encode(hashlib.sha256(seed.encode()).digest()[:nbytes]).decode()


def hex_id(seed: str, nbytes: int) -> str:
    return hashlib.sha256(seed.encode()).digest()[:nbytes].hex()


def trace_id_for(seed: str) -> str:
    return "tr-" + hex_id("trace:" + seed, 16)


@dataclass
class SpanBuilder:
    """Collects spans of one trace in MLflow 3's to_json span layout."""

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
        span_id = b64_id(f"span:{self.seed}:{len(self.spans)}", 8)
        start = self.start_ns + int(offset_ms * MS)
        attrs = {
            "mlflow.traceRequestId": json.dumps(trace_id_for(self.seed)),
            "mlflow.spanType": json.dumps(span_type),
            "mlflow.spanInputs": json.dumps(inputs),
        }
        if outputs is not None:
            attrs["mlflow.spanOutputs"] = json.dumps(outputs)
        for key, value in (attributes or {}).items():
            attrs[key] = json.dumps(value)
        events = []
        if error is not None:
            kind, message = error
            events.append(
                {
                    "name": "exception",
                    "time_unix_nano": start + int(duration_ms * MS) - 1000,
                    "attributes": {
                        "exception.type": kind,
                        "exception.message": message,
                        "exception.stacktrace": f'Traceback (most recent call last):\n  File "agent/tools.py", line 88, in {name}\n    raise {kind}({message!r})\n{kind}: {message}',
                    },
                }
            )
        self.spans.append(
            {
                "trace_id": self.otel_trace_id,
                "span_id": span_id,
                "parent_span_id": parent,
                "name": name,
                "start_time_unix_nano": start,
                "end_time_unix_nano": start + int(duration_ms * MS),
                "events": events,
                "status": {
                    "code": "STATUS_CODE_ERROR" if error else "STATUS_CODE_OK",
                    "message": f"{error[0]}: {error[1]}" if error else "",
                },
                "attributes": attrs,
            }
        )
        return span_id


def chat_completion(text: str | None, tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-demo",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "tool_calls" if tool_calls else "stop", "message": message}],
    }


def to_json(
    builder: SpanBuilder,
    *,
    name: str,
    request_time: datetime,
    inputs: Any,
    outputs: Any,
    state: str = "OK",
    session: str = "",
    assessments: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    trace_id = trace_id_for(builder.seed)
    root = builder.spans[0]
    duration_ms = (root["end_time_unix_nano"] - root["start_time_unix_nano"]) // MS
    metadata = {
        "mlflow.trace_schema.version": "3",
        "mlflow.traceInputs": json.dumps(inputs)[:1000],
        "mlflow.traceOutputs": json.dumps(outputs)[:1000] if outputs is not None else "",
        "mlflow.trace.user": "member-" + hex_id("user:" + builder.seed, 3),
    }
    if session:
        metadata["mlflow.trace.session"] = session
    return {
        "info": {
            "trace_id": trace_id,
            "trace_location": {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": "42"}},
            "request_time": request_time.isoformat().replace("+00:00", "Z"),
            "execution_duration_ms": duration_ms,
            "state": state,
            "trace_metadata": metadata,
            "tags": {"mlflow.traceName": name, "app.version": "v2" if int(hex_id(builder.seed, 1), 16) % 2 else "v1"},
            "request_preview": json.dumps(inputs)[:1000],
            "response_preview": json.dumps(outputs)[:1000] if outputs is not None else "",
            "assessments": [dict(a, trace_id=trace_id) for a in assessments or []],
        },
        "data": {"spans": builder.spans},
    }


def judge_assessments(seed: str, rng: random.Random, when: datetime, *, grounded: bool) -> list[dict[str, Any]]:
    stamp = when.isoformat().replace("+00:00", "Z")
    relevant = grounded or rng.random() < 0.5
    rows = [
        {
            "assessment_id": "a-" + hex_id("judge-rel:" + seed, 16),
            "assessment_name": "relevance",
            "source": {"source_type": "LLM_JUDGE", "source_id": "openai:/gpt-4o-mini"},
            "create_time": stamp,
            "last_update_time": stamp,
            "feedback": {"value": "yes" if relevant else "no"},
            "rationale": "The answer addresses the member's question."
            if relevant
            else "The answer drifts from the question.",
            "valid": True,
        },
        {
            "assessment_id": "a-" + hex_id("judge-correct:" + seed, 16),
            "assessment_name": "correct",
            "source": {"source_type": "LLM_JUDGE", "source_id": "openai:/gpt-4o-mini"},
            "create_time": stamp,
            "last_update_time": stamp,
            "feedback": {"value": grounded},
            "rationale": "Every claim is supported by the retrieved policy text."
            if grounded
            else "One claim is not in the documents.",
            "valid": True,
        },
        {
            "assessment_id": "a-" + hex_id("code-len:" + seed, 16),
            "assessment_name": "answer_length_ok",
            "source": {"source_type": "CODE", "source_id": "checks.length"},
            "create_time": stamp,
            "last_update_time": stamp,
            "feedback": {"value": True},
            "valid": True,
        },
    ]
    if seed.endswith("0"):
        # A human disagreed with the judge: the judge's verdict stays, marked as overridden.
        rows[0]["valid"] = False
        rows.append(
            {
                "assessment_id": "a-" + hex_id("human-rel:" + seed, 16),
                "assessment_name": "relevance",
                "source": {"source_type": "HUMAN", "source_id": "dr.ames@example-health.com"},
                "create_time": stamp,
                "last_update_time": stamp,
                "feedback": {"value": "no" if relevant else "yes"},
                "rationale": "Checked against the policy myself.",
                "overrides": rows[0]["assessment_id"],
                "valid": True,
            }
        )
    return rows


def rag_trace(
    index: int, scenario: Scenario, when: datetime, rng: random.Random, *, anthropic: bool = False
) -> dict[str, Any]:
    seed = f"demo-rag-{index}"
    builder = SpanBuilder(seed, int(when.timestamp() * 1e9))
    question = {"messages": [{"role": "user", "content": scenario.question}]}
    grounded = rng.random() < 0.75
    answer = scenario.answer if grounded else scenario.answer + " You can also claim this twice a year."
    total = rng.uniform(900, 2600)
    root = builder.add(
        "support_rag",
        "CHAIN",
        parent=None,
        offset_ms=0,
        duration_ms=total,
        inputs=question,
        outputs=chat_completion(answer),
    )
    docs = [
        {
            "page_content": text,
            "metadata": {
                "doc_uri": uri,
                "chunk_id": f"c-{i}",
                "score": round(0.93 - i * 0.07 - rng.random() * 0.03, 2),
            },
            "id": f"doc-{hex_id(uri, 3)}",
        }
        for i, (uri, text) in enumerate(scenario.documents)
    ]
    builder.add(
        "embed_query",
        "EMBEDDING",
        parent=root,
        offset_ms=5,
        duration_ms=40,
        inputs={"text": scenario.question},
        outputs={"dimensions": 384},
    )
    builder.add(
        "search_policies",
        "RETRIEVER",
        parent=root,
        offset_ms=50,
        duration_ms=rng.uniform(60, 180),
        inputs={"query": scenario.question, "top_k": len(docs)},
        outputs=docs,
    )
    context = "\n\n".join(d["page_content"] for d in docs)
    system = f"You are a careful health-insurance assistant. Answer only from the policy excerpts:\n{context}"
    if anthropic:
        llm_inputs = {
            "system": system,
            "messages": [{"role": "user", "content": [{"type": "text", "text": scenario.question}]}],
            "model": "claude-sonnet-4-5",
        }
        llm_outputs = {"type": "message", "role": "assistant", "content": [{"type": "text", "text": answer}]}
        span_type = "LLM"
    else:
        llm_inputs = {
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": scenario.question}],
            "model": "gpt-4o-mini",
        }
        llm_outputs = chat_completion(answer)
        span_type = "CHAT_MODEL"
    builder.add(
        "generate_answer",
        span_type,
        parent=root,
        offset_ms=260,
        duration_ms=total - 280,
        inputs=llm_inputs,
        outputs=llm_outputs,
        attributes={"mlflow.chat.tokenUsage": {"input_tokens": 412, "output_tokens": 68, "total_tokens": 480}},
    )
    assessments = judge_assessments(seed, rng, when + timedelta(minutes=5), grounded=grounded) if index % 2 == 0 else []
    return to_json(
        builder,
        name="support_rag",
        request_time=when,
        inputs=question,
        outputs=chat_completion(answer),
        assessments=assessments,
    )


def chat_trace(index: int, scenario: Scenario, when: datetime, rng: random.Random) -> dict[str, Any]:
    seed = f"demo-chat-{index}"
    builder = SpanBuilder(seed, int(when.timestamp() * 1e9))
    follow_up = scenario.follow_up or "Thanks. Is there anything else I should know?"
    history = [
        {"role": "system", "content": "You are a friendly health-insurance assistant."},
        {"role": "user", "content": scenario.question},
        {"role": "assistant", "content": scenario.answer},
        {"role": "user", "content": follow_up},
    ]
    reply = (
        "You will need the birth certificate and the member's ID number. Upload both in the app under “Family”."
        if scenario.follow_up
        else "Keep your receipts and check the app for your claims' status at any time."
    )
    inputs = {"messages": history}
    total = rng.uniform(700, 1800)
    root = builder.add(
        "chat_turn", "AGENT", parent=None, offset_ms=0, duration_ms=total, inputs=inputs, outputs=chat_completion(reply)
    )
    builder.add(
        "chat.completions.create",
        "CHAT_MODEL",
        parent=root,
        offset_ms=20,
        duration_ms=total - 40,
        inputs={**inputs, "model": "gpt-4o-mini"},
        outputs=chat_completion(reply),
    )
    return to_json(
        builder,
        name="chat_turn",
        request_time=when,
        inputs=inputs,
        outputs=chat_completion(reply),
        session=f"chat-{index // 2}",
    )


def agent_trace(
    index: int, scenario: Scenario, when: datetime, rng: random.Random, *, fail: bool = False
) -> dict[str, Any]:
    seed = f"demo-agent-{index}"
    builder = SpanBuilder(seed, int(when.timestamp() * 1e9))
    tool_name, args, result = scenario.tool or ("search_policies", {"query": scenario.question}, {"hits": 2})
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
        error=("ToolError", f"{tool_name} timed out after 3 retries") if fail else None,
    )
    call = {"id": "call_1", "type": "function", "function": {"name": tool_name, "arguments": json.dumps(args)}}
    builder.add(
        "plan",
        "CHAT_MODEL",
        parent=root,
        offset_ms=10,
        duration_ms=400,
        inputs={**question, "tools": [{"type": "function", "function": {"name": tool_name}}]},
        outputs=chat_completion(None, [call]),
    )
    builder.add(
        tool_name,
        "TOOL",
        parent=root,
        offset_ms=420,
        duration_ms=rng.uniform(80, 900),
        inputs=args,
        outputs=None if fail else result,
        error=("TimeoutError", f"{tool_name} timed out after 3 retries") if fail else None,
    )
    if not fail:
        messages = [
            *question["messages"],
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": json.dumps(result)},
        ]
        builder.add(
            "answer",
            "CHAT_MODEL",
            parent=root,
            offset_ms=1400,
            duration_ms=total - 1450,
            inputs={"messages": messages},
            outputs=chat_completion(scenario.answer),
        )
    return to_json(
        builder, name="member_agent", request_time=when, inputs=question, outputs=final, state="ERROR" if fail else "OK"
    )


def demo_documents(now: datetime | None = None, count: int = 64) -> list[dict[str, Any]]:
    """``count`` varied traces spread over the last 14 days: RAG, multi-turn chat, tool agents, errors."""
    now = now or datetime.now(tz=UTC)
    rng = random.Random(20261124)
    documents = []
    for index in range(count):
        scenario = SCENARIOS[index % len(SCENARIOS)]
        when = (now - timedelta(days=14) + timedelta(minutes=index * 14 * 24 * 60 / count)).replace(microsecond=0)
        kind = index % 8
        if kind in (0, 1, 2, 5):
            documents.append(rag_trace(index, scenario, when, rng, anthropic=kind == 5))
        elif kind in (3, 6):
            documents.append(chat_trace(index, scenario, when, rng))
        else:
            documents.append(agent_trace(index, scenario, when, rng, fail=kind == 7 and index % 16 == 7))
    return documents


def build_trace(*, n_spans: int, payload_bytes: int = 1000, seed: int = 0, n_documents: int = 0) -> dict[str, Any]:
    """One synthetic trace of ``n_spans`` spans (about ``payload_bytes`` of inputs+outputs each), for benchmarks."""
    rng = random.Random(seed)
    builder = SpanBuilder(f"bench-{seed}", 1_795_000_000_000_000_000 + seed * 10**9)
    half = "x" * max(payload_bytes // 2 - 30, 1)
    root = builder.add(
        "agent",
        "AGENT",
        parent=None,
        offset_ms=0,
        duration_ms=n_spans * 2 + 10,
        inputs={"question": f"bench question {seed}", "pad": half},
        outputs={"answer": "ok", "pad": half},
    )
    parents = [root]
    retrievers = max(1, n_spans // 20) if n_documents else 0
    per_retriever = -(-n_documents // retrievers) if retrievers else 0
    kinds = ["CHAIN", "LLM", "TOOL"]
    documents_left = n_documents
    for index in range(1, n_spans):
        parent = parents[rng.randrange(len(parents))]
        if documents_left > 0 and index % 20 == 1:
            count = min(per_retriever, documents_left)
            documents_left -= count
            outputs = [
                {
                    "page_content": f"Document {seed}-{index}-{d}. " + "text " * 20,
                    "metadata": {"doc_uri": f"https://docs.example.com/{index}/{d}.html"},
                    "id": f"d{index}-{d}",
                }
                for d in range(count)
            ]
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
            kinds[index % 3],
            parent=parent,
            offset_ms=index,
            duration_ms=1.5,
            inputs={"step": index, "pad": half},
            outputs={"result": index, "pad": half},
        )
        if len(parents) < 50:
            parents.append(span_id)
    return to_json(
        builder,
        name="agent",
        request_time=datetime.fromtimestamp(builder.start_ns / 1e9, tz=UTC),
        inputs={"question": f"bench question {seed}"},
        outputs={"answer": "ok"},
    )
