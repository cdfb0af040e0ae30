"""The keys an MLflow trace filter string may name, and the comparators each accepts.

Taken from MLflow's ``SearchTraceUtils`` (``mlflow/utils/search_utils.py``) and its "Search Traces"
guide: ``attributes.`` / ``trace.`` keys (prefix-less keys are attributes), ``tags.``,
``metadata.``, ``span.``, ``feedback.`` and ``expectation.``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Entity(StrEnum):
    ATTRIBUTE = "attribute"
    TAG = "tag"
    METADATA = "metadata"
    SPAN = "span"
    FEEDBACK = "feedback"
    EXPECTATION = "expectation"


# The prefix before the first dot, as MLflow spells it (and its aliases).
PREFIXES: dict[str, Entity] = {
    "attribute": Entity.ATTRIBUTE,
    "attributes": Entity.ATTRIBUTE,
    "attr": Entity.ATTRIBUTE,
    "trace": Entity.ATTRIBUTE,
    "tag": Entity.TAG,
    "tags": Entity.TAG,
    "metadata": Entity.METADATA,
    "request_metadata": Entity.METADATA,
    "span": Entity.SPAN,
    "spans": Entity.SPAN,
    "feedback": Entity.FEEDBACK,
    "expectation": Entity.EXPECTATION,
    "expectations": Entity.EXPECTATION,
}

EQUALITY = frozenset({"=", "!="})
LISTS = frozenset({"IN", "NOT IN"})
PATTERNS = frozenset({"LIKE", "ILIKE", "RLIKE"})
ORDERING = frozenset({">", ">=", "<", "<="})
NULLS = frozenset({"IS NULL", "IS NOT NULL"})
ALL_COMPARATORS = ("=", "!=", ">", ">=", "<", "<=", "IN", "NOT IN", "LIKE", "ILIKE", "RLIKE", "IS NULL", "IS NOT NULL")


class ValueKind(StrEnum):
    STRING = "a quoted string"
    NUMBER = "a number"
    ANY = "a quoted string, a number, or true/false"


@dataclass(frozen=True)
class KeySpec:
    """What one key is: the comparators it accepts and the literal it compares with."""

    comparators: frozenset[str]
    value: ValueKind = ValueKind.STRING


STRING_FIELD = KeySpec(EQUALITY | LISTS | PATTERNS)
ID_FIELD = KeySpec(EQUALITY | LISTS)
NUMBER_FIELD = KeySpec(EQUALITY | ORDERING, ValueKind.NUMBER)
FULL_TEXT = KeySpec(frozenset({"LIKE", "ILIKE"}))

# attribute name (lower case) → (canonical name, spec)
ATTRIBUTES: dict[str, tuple[str, KeySpec]] = {
    "request_id": ("trace_id", ID_FIELD),
    "trace_id": ("trace_id", ID_FIELD),
    "timestamp_ms": ("timestamp_ms", NUMBER_FIELD),
    "timestamp": ("timestamp_ms", NUMBER_FIELD),
    "execution_time_ms": ("execution_time_ms", NUMBER_FIELD),
    "execution_time": ("execution_time_ms", NUMBER_FIELD),
    "status": ("status", ID_FIELD),
    "state": ("status", ID_FIELD),
    "name": ("name", STRING_FIELD),
    "client_request_id": ("client_request_id", STRING_FIELD),
    "run_id": ("run_id", ID_FIELD),
    "model_id": ("model_id", STRING_FIELD),
    "text": ("text", FULL_TEXT),
}

TAG_OR_METADATA = KeySpec(EQUALITY | LISTS | PATTERNS | NULLS)

SPAN_FIELDS: dict[str, KeySpec] = {
    "name": STRING_FIELD,
    "type": STRING_FIELD,
    "status": ID_FIELD,
    "content": FULL_TEXT,
}
SPAN_ATTRIBUTE = KeySpec(PATTERNS)  # span.attributes.<key>

ASSESSMENT = KeySpec(EQUALITY | LISTS | PATTERNS | ORDERING | NULLS, ValueKind.ANY)


def spec_for(entity: Entity, name: str) -> KeySpec | None:
    """The spec of ``entity.name`` (``name`` already canonical), or None for an unknown key."""
    if entity is Entity.ATTRIBUTE:
        found = ATTRIBUTES.get(name)
        return found[1] if found else None
    if entity in (Entity.TAG, Entity.METADATA):
        return TAG_OR_METADATA
    if entity is Entity.SPAN:
        if name.startswith("attributes."):
            return SPAN_ATTRIBUTE
        return SPAN_FIELDS.get(name)
    return ASSESSMENT
