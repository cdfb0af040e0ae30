"""Rules of each input kind: schema configuration checks and typed answer parsing."""

from __future__ import annotations

import math
from typing import Any

from django.core.exceptions import ValidationError

from .models import INPUT_FIELDS, InputType, LabelSchema

DEFAULT_TEXT_MAX_LENGTH = 10_000


def validate_schema_config(schema: LabelSchema) -> None:
    """Raise ``ValidationError`` (by field) when a schema's settings make no sense for its input kind."""
    errors: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    if not (schema.name or "").strip():
        add("name", "Give the question a name (letters, digits, - and _).")
    if not (schema.title or "").strip():
        add("title", "Write the question reviewers will read.")
    if schema.input_type not in INPUT_FIELDS:
        add("input_type", "Choose an input kind.")
        raise ValidationError(errors)
    if schema.input_type in (InputType.CATEGORICAL, InputType.CATEGORICAL_LIST):
        options = [str(o).strip() for o in schema.options or []]
        if not [o for o in options if o]:
            add("options", "Add at least one option.")
        elif any(not o for o in options):
            add("options", "Options cannot be empty.")
        if any("\x00" in o for o in options):
            add("options", "An option contains a NUL character; remove it.")
        duplicates = sorted({o for o in options if options.count(o) > 1 and o})
        if duplicates:
            add("options", f"Duplicate options: {', '.join(duplicates)}.")
    text_kind = schema.input_type in (InputType.TEXT, InputType.TEXT_LIST)
    if text_kind and schema.max_length is not None and schema.max_length < 1:
        add("max_length", "Maximum length must be at least 1.")
    if schema.input_type == InputType.TEXT_LIST and schema.max_count is not None and schema.max_count < 1:
        add("max_count", "Maximum count must be at least 1.")
    if schema.input_type == InputType.NUMERIC:
        for field in ("min_value", "max_value"):
            value = getattr(schema, field)
            if value is not None and not math.isfinite(value):
                add(field, "Use a finite number.")
        if schema.min_value is not None and schema.max_value is not None and schema.min_value >= schema.max_value:
            add("max_value", "Maximum must be greater than minimum.")
    if schema.input_type == InputType.PASS_FAIL:
        pass_label = (schema.pass_label or "Pass").strip()
        fail_label = (schema.fail_label or "Fail").strip()
        if pass_label.lower() == fail_label.lower():
            add("fail_label", "Pass and fail labels must differ.")
    if errors:
        raise ValidationError(errors)


def clear_unused_config(schema: LabelSchema) -> None:
    """Reset settings that do not belong to the chosen input kind, so stored schemas stay clean."""
    kept = INPUT_FIELDS[schema.input_type]
    defaults: dict[str, Any] = {
        "options": [],
        "max_length": None,
        "max_count": None,
        "min_value": None,
        "max_value": None,
        "integer": False,
        "pass_label": "",
        "fail_label": "",
    }
    for field, default in defaults.items():
        if field not in kept:
            setattr(schema, field, default)
    if schema.input_type in (InputType.CATEGORICAL, InputType.CATEGORICAL_LIST):
        schema.options = [str(o).strip() for o in schema.options]


def is_blank(raw: Any) -> bool:
    if raw is None:
        return True
    if isinstance(raw, str):
        return not raw.strip()
    if isinstance(raw, list):
        return all(is_blank(item) for item in raw)
    return False


def _texts(raw: Any) -> list[str]:
    """A text list arrives as a list of fields or as one textarea with one item per line."""
    items = raw if isinstance(raw, list) else str(raw).splitlines()
    return [str(item).strip() for item in items if str(item).strip()]


def has_nul(raw: Any) -> bool:
    """A NUL character anywhere in the text(s): PostgreSQL stores none, so it is refused up front."""
    if isinstance(raw, list):
        return any(has_nul(item) for item in raw)
    return "\x00" in str(raw)


def parse_answer(schema: LabelSchema, raw: Any) -> Any:
    """The typed value of a reviewer's answer (bool, str, list, int/float), or ``ValidationError``."""
    if has_nul(raw):
        raise ValidationError("The answer contains a NUL character; remove it.")
    kind = schema.input_type
    if kind == InputType.PASS_FAIL:
        value = str(raw).strip().lower()
        if value not in ("pass", "fail"):
            raise ValidationError("Choose pass or fail.")
        return value == "pass"
    if kind == InputType.CATEGORICAL:
        value = str(raw).strip()
        if value not in [str(o) for o in schema.options]:
            raise ValidationError(f"“{value[:50]}” is not one of the options.")
        return value
    if kind == InputType.CATEGORICAL_LIST:
        values = [str(v).strip() for v in (raw if isinstance(raw, list) else [raw]) if str(v).strip()]
        unknown = [v for v in values if v not in [str(o) for o in schema.options]]
        if unknown:
            raise ValidationError(f"Not an option: {', '.join(v[:50] for v in unknown)}.")
        return [str(o) for o in schema.options if str(o) in values]  # option order, no duplicates
    if kind == InputType.TEXT:
        value = str(raw).strip()
        limit = schema.max_length or DEFAULT_TEXT_MAX_LENGTH
        if len(value) > limit:
            raise ValidationError(f"Keep it under {limit} characters (this is {len(value)}).")
        return value
    if kind == InputType.TEXT_LIST:
        values = _texts(raw)
        limit = schema.max_length or DEFAULT_TEXT_MAX_LENGTH
        too_long = [i + 1 for i, v in enumerate(values) if len(v) > limit]
        if too_long:
            raise ValidationError(f"Item {too_long[0]} is longer than {limit} characters.")
        if schema.max_count is not None and len(values) > schema.max_count:
            raise ValidationError(f"At most {schema.max_count} items (you wrote {len(values)}).")
        return values
    if kind == InputType.NUMERIC:
        return _parse_number(schema, raw)
    raise ValidationError("Unknown input kind.")


def _parse_number(schema: LabelSchema, raw: Any) -> int | float:
    text = str(raw).strip()
    try:
        number = float(text)
    except ValueError:
        raise ValidationError(f"“{text[:30]}” is not a number.") from None
    if not math.isfinite(number):
        raise ValidationError("Enter a finite number.")
    if schema.integer:
        if not number.is_integer():
            raise ValidationError("Enter a whole number.")
        number = int(number)
    if schema.min_value is not None and number < schema.min_value:
        raise ValidationError(f"Enter a number of at least {format_number(schema.min_value)}.")
    if schema.max_value is not None and number > schema.max_value:
        raise ValidationError(f"Enter a number of at most {format_number(schema.max_value)}.")
    return number


def format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def answer_to_form_value(schema: LabelSchema, value: Any) -> Any:
    """A stored typed value back into what the form field shows."""
    if schema.input_type == InputType.PASS_FAIL and isinstance(value, bool):
        return "pass" if value else "fail"
    if schema.input_type == InputType.TEXT_LIST and isinstance(value, list):
        return "\n".join(map(str, value))
    if schema.input_type == InputType.NUMERIC and isinstance(value, float) and value.is_integer():
        return format_number(value)
    return value


def display_answer(schema: LabelSchema, value: Any) -> str:
    """A stored value as the reviewer saw it: the pass/fail labels, lists joined, whole numbers plain."""
    if schema.input_type == InputType.PASS_FAIL and isinstance(value, bool):
        return (schema.pass_label or "Pass") if value else (schema.fail_label or "Fail")
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, float):
        return format_number(value)
    return "—" if value is None else str(value)
