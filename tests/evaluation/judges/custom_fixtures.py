"""Definitions of custom judges shared by the custom-judge tests."""

from __future__ import annotations

from typing import Any

from evaluation.judge_services import save_custom_judge
from evaluation.judges.custom import Category, Definition, Example
from evaluation.models import CustomJudge

SCALE_INSTRUCTIONS = "Rate how helpful the answer {{ outputs }} is for the question {{ inputs }}."


def scale_definition(**overrides: Any) -> Definition:
    fields: dict[str, Any] = {
        "name": "helpfulness",
        "kind": "prompt",
        "instructions": SCALE_INSTRUCTIONS,
        "output_kind": "scale",
        "scale_min": 1,
        "scale_max": 5,
        "pass_threshold": 4,
        "examples": (
            Example("What is 2+2?", "4", "5", "Direct and correct."),
            Example("Capital of France?", "I like trains.", "1", "Off topic."),
        ),
    }
    return Definition(**{**fields, **overrides})


def yes_no_definition(**overrides: Any) -> Definition:
    fields: dict[str, Any] = {
        "name": "is_polite",
        "kind": "prompt",
        "instructions": "Is the response {{ outputs }} polite?",
        "output_kind": "yes_no",
    }
    return Definition(**{**fields, **overrides})


def category_definition(**overrides: Any) -> Definition:
    fields: dict[str, Any] = {
        "name": "formality",
        "kind": "prompt",
        "instructions": "How formal is {{ outputs }}?",
        "output_kind": "categories",
        "categories": (Category("formal", 1.0), Category("semi_formal", 0.5), Category("not_formal", 0.0)),
    }
    return Definition(**{**fields, **overrides})


def guidelines_definition(**overrides: Any) -> Definition:
    fields: dict[str, Any] = {
        "name": "tone",
        "kind": "guidelines",
        "guidelines": ("The response must be polite.", "The response must be in English."),
    }
    return Definition(**{**fields, **overrides})


def make_custom_judge(definition: Definition | None = None) -> CustomJudge:
    return save_custom_judge(definition=definition or scale_definition())
