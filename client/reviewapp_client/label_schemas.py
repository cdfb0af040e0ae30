"""``mlflow.genai.label_schemas`` over the review app's API: the input kinds, ``create_label_schema``,
``get_label_schema``, ``list_label_schemas``, ``update_label_schema`` and ``delete_label_schema``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from ._http import get_client

PATH = "label-schemas/"
EXPECTED_FACTS = "expected_facts"
GUIDELINES = "guidelines"
EXPECTED_RESPONSE = "expected_response"


class InputType:
    """An answer kind; ``to_dict()`` is the API's ``input`` object."""

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    @staticmethod
    def from_dict(data: dict[str, Any]) -> InputType:
        kind = data.get("type")
        if kind == "categorical":
            return InputCategorical(options=list(data.get("options") or []))
        if kind == "categorical_list":
            return InputCategoricalList(options=list(data.get("options") or []))
        if kind == "text":
            return InputText(max_length=data.get("max_length"))
        if kind == "text_list":
            return InputTextList(max_length_each=data.get("max_length"), max_count=data.get("max_count"))
        if kind == "numeric":
            return InputNumeric(
                min_value=data.get("min_value"), max_value=data.get("max_value"), integer=bool(data.get("integer"))
            )
        if kind == "pass_fail":
            return InputPassFail(
                positive_label=data.get("pass_label") or "Pass", negative_label=data.get("fail_label") or "Fail"
            )
        raise ValueError(f"unknown input type {kind!r}")


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if value is not None}


@dataclass
class InputCategorical(InputType):
    options: list[str]
    multi_select: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"type": "categorical_list" if self.multi_select else "categorical", "options": list(self.options)}


@dataclass
class InputCategoricalList(InputType):
    options: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"type": "categorical_list", "options": list(self.options)}


@dataclass
class InputText(InputType):
    max_length: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return _drop_none({"type": "text", "max_length": self.max_length})


@dataclass
class InputTextList(InputType):
    max_length_each: int | None = None
    max_count: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return _drop_none({"type": "text_list", "max_length": self.max_length_each, "max_count": self.max_count})


@dataclass
class InputNumeric(InputType):
    min_value: float | None = None
    max_value: float | None = None
    integer: bool = False  # the app's extension: whole numbers only

    def to_dict(self) -> dict[str, Any]:
        data = _drop_none({"type": "numeric", "min_value": self.min_value, "max_value": self.max_value})
        return {**data, "integer": True} if self.integer else data


@dataclass
class InputPassFail(InputType):
    positive_label: str = "Pass"
    negative_label: str = "Fail"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "pass_fail", "pass_label": self.positive_label, "fail_label": self.negative_label}


@dataclass
class LabelSchema:
    """MLflow's ``LabelSchema`` as the app stores it (plus ``title``, ``version`` and ``builtin``)."""

    name: str
    type: str
    title: str
    input: InputType
    instruction: str | None = None
    enable_comment: bool = False
    version: int = 1
    builtin: bool = False
    created_at: str | None = None
    updated_at: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelSchema:
        return cls(
            name=data["name"],
            type=data["type"],
            title=data["title"],
            input=InputType.from_dict(data["input"]),
            instruction=data.get("instruction") or None,
            enable_comment=bool(data.get("enable_comment")),
            version=int(data.get("version") or 1),
            builtin=bool(data.get("builtin")),
            created_at=data.get("created_at"),
            updated_at=data.get("updated_at"),
        )


def _input_dict(value: InputType | dict[str, Any]) -> dict[str, Any]:
    return value.to_dict() if isinstance(value, InputType) else dict(value)


def create_label_schema(
    name: str,
    *,
    type: Literal["feedback", "expectation"],
    input: InputType | dict[str, Any],
    instruction: str | None = None,
    enable_comment: bool = False,
    title: str | None = None,
    overwrite: bool = False,
) -> LabelSchema:
    """Create a label schema (admins); ``overwrite=True`` replaces one of the same name (a new version)."""
    body = {
        "name": name,
        "type": type,
        "title": title or name,
        "input": _input_dict(input),
        "instruction": instruction,
        "enable_comment": enable_comment,
        "overwrite": overwrite,
    }
    return LabelSchema.from_dict(get_client().post(PATH, json=_drop_none(body)))


def get_label_schema(name: str) -> LabelSchema:
    return LabelSchema.from_dict(get_client().get(PATH + quote(name, safe="")))


def list_label_schemas() -> list[LabelSchema]:
    return [LabelSchema.from_dict(d) for d in get_client().paginate(PATH, "label_schemas", {"max_results": 500})]


def update_label_schema(
    name: str,
    *,
    type: Literal["feedback", "expectation"] | None = None,
    input: InputType | dict[str, Any] | None = None,
    instruction: str | None = None,
    enable_comment: bool | None = None,
    title: str | None = None,
) -> LabelSchema:
    body = {
        "type": type,
        "input": _input_dict(input) if input is not None else None,
        "instruction": instruction,
        "enable_comment": enable_comment,
        "title": title,
    }
    return LabelSchema.from_dict(get_client().patch(PATH + quote(name, safe=""), json=_drop_none(body)))


def delete_label_schema(name: str) -> None:
    """Delete a label schema (refused while a session asks it)."""
    get_client().delete(PATH + quote(name, safe=""))
