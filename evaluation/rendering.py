"""Dataset records as the dataset page shows them: the conversation as on the trace page, labels in full.

Pure functions over loaded rows (no queries), reusing the trace page's helpers in traces/rendering.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from traces.models import Span
from traces.rendering import Conversation, conversation_for, pretty_json

from .models import DatasetRecord

FEEDBACK_TAG = "feedback."


@dataclass(slots=True)
class Label:
    name: str
    text: str = ""  # one value, shown with its line breaks
    items: tuple[str, ...] = ()  # a list value (expected facts, guidelines), shown as a list


@dataclass(slots=True)
class RecordView:
    record: DatasetRecord
    conversation: Conversation
    expectations: list[Label]
    feedback: list[Label]  # tags feedback.<question>, under the question's name
    tags: list[Label]  # the other tags

    @property
    def is_empty(self) -> bool:
        c = self.conversation
        return not (c.messages or c.request_json or c.response_json)


def _label(name: str, value: Any) -> Label:
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return Label(name, items=tuple(str(v) for v in value))
    if isinstance(value, bool):
        return Label(name, "yes" if value else "no")
    return Label(name, value if isinstance(value, str) else pretty_json(value, limit=2000))


def record_view(record: DatasetRecord) -> RecordView:
    # A record is one request and one response: an unsaved root span carries them for conversation_for.
    root = Span(
        span_id="record", parent_id="", start_time_ns=0, end_time_ns=0, inputs=record.inputs, outputs=record.outputs
    )
    conversation = conversation_for([root])
    tags = sorted((record.tags if isinstance(record.tags, dict) else {}).items())
    return RecordView(
        record=record,
        conversation=conversation,
        expectations=[_label(k, v) for k, v in sorted((record.expectations or {}).items())],
        feedback=[_label(k.removeprefix(FEEDBACK_TAG), v) for k, v in tags if k.startswith(FEEDBACK_TAG)],
        tags=[_label(k, v) for k, v in tags if not k.startswith(FEEDBACK_TAG)],
    )


def record_views(records: Iterable[DatasetRecord]) -> list[RecordView]:
    return [record_view(r) for r in records]
