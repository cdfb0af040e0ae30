"""Small decoders shared by the trace formats: ids, times, typed OTLP values, JSON-encoded attributes."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from typing import Any

import orjson

from .records import TraceFormatError
from .validation import MAX_JSON_DEPTH, check_bigint, check_time, check_time_ns, dump_json

_HEX_RE = re.compile(r"^(0x)?[0-9a-fA-F]+$")
_DURATION_RE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(s|ms)?\s*$")
_BIGINT_RANGE = range(-(2**63), 2**63)
MAX_ID_LENGTH = 64  # trace, experiment and assessment ids are stored in 64-character columns


def short_id(value: str, *, what: str) -> str:
    """An id that fits its column (PostgreSQL refuses longer values, SQLite would store them)."""
    if len(value) > MAX_ID_LENGTH:
        raise TraceFormatError(f"{what} {value[:40]!r}… is longer than {MAX_ID_LENGTH} characters")
    return value


def hex_id(value: Any, *, what: str) -> str:
    """An OpenTelemetry id as lowercase hex, from hex (``0x`` optional) or base64 (MLflow 3's to_json)."""
    if not isinstance(value, str) or not value:
        raise TraceFormatError(f"missing {what}")
    if _HEX_RE.match(value) and len(value.removeprefix("0x")) in (16, 32):
        return value.removeprefix("0x").lower()
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) in (8, 16):
        return raw.hex()
    if _HEX_RE.match(value) and len(value.removeprefix("0x")) <= 32:
        return value.removeprefix("0x").lower()
    raise TraceFormatError(f"{what} {value[:40]!r} is neither hex nor base64")


def parse_time(value: Any, *, what: str) -> datetime:
    """An instant in 1970–2200 from an ISO-8601 string, epoch milliseconds, or nanoseconds (if very large)."""
    if isinstance(value, bool) or value is None or value == "":
        raise TraceFormatError(f"missing {what}")
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.isdigit()):
        try:
            number = int(value)
            parsed = datetime.fromtimestamp(number / 1e9 if number > 10**15 else number / 1e3, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise TraceFormatError(f"{what} {str(value)[:40]} is out of range") from None
        return check_time(parsed, what=what, shown=f"{value} ({parsed.isoformat()})")
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise TraceFormatError(f"{what} {value[:40]!r} is not a time") from None
        return check_time(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC), what=what)
    raise TraceFormatError(f"{what} has the wrong type ({type(value).__name__})")


def parse_duration_ms(value: Any, *, what: str = "execution_duration_ms") -> int | None:
    """``"0.134s"`` (protobuf JSON), ``"12ms"`` or a plain number of milliseconds, within BIGINT."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        if isinstance(value, int):
            milliseconds = value
        elif isinstance(value, float):
            milliseconds = int(value)
        elif isinstance(value, str) and (match := _DURATION_RE.match(value)):
            number = float(match.group(1))
            milliseconds = round(number * 1000) if match.group(2) == "s" else round(number)
        else:
            raise TraceFormatError(f"{what} {str(value)[:40]!r} is not a duration")
    except (OverflowError, ValueError):  # inf, or a number string too long for int()
        raise TraceFormatError(f"{what} {str(value)[:40]!r} is out of range") from None
    return check_bigint(milliseconds, what=what)


def nanos(value: Any, *, what: str) -> int:
    if isinstance(value, bool):
        raise TraceFormatError(f"{what} must be a number of nanoseconds")
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise TraceFormatError(f"{what} must be a number of nanoseconds") from None
    if number not in _BIGINT_RANGE:
        raise TraceFormatError(f"{what} {number} is out of range")
    return number


def timestamp_ns(value: Any, *, what: str) -> int:
    """A span or event time: nanoseconds since the epoch, in 1970–2200."""
    return check_time_ns(nanos(value, what=what), what=what)


def decode_json_string(value: Any) -> Any:
    """MLflow stores attribute values JSON-encoded; decode them, keeping non-JSON strings as they are."""
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


INT64 = range(-(2**63), 2**63)


def _number(convert: type[int] | type[float], value: Any) -> int | float:
    try:
        number = convert(value)
    except (TypeError, ValueError, OverflowError):
        raise TraceFormatError(f"{str(value)[:40]!r} is not a number") from None
    if convert is int and number not in INT64:  # OTLP's int_value is an int64; int(-1e308) is not
        raise TraceFormatError(f"{str(value)[:40]!r} is outside the 64-bit integer range of an OTLP int_value")
    return number


def _items(container: Any, *, what: str) -> list[Any]:
    """The ``values`` list of an OTLP ``ArrayValue``/``KeyValueList``."""
    if not container:
        return []
    values = container.get("values") or [] if isinstance(container, dict) else None
    if not isinstance(values, list):
        raise TraceFormatError(f"{what} must be an object with a 'values' list")
    return values


def otlp_value(value: Any, depth: int = 1) -> Any:
    """Unwrap an OTLP ``AnyValue`` (snake_case from MLflow's REST API, camelCase from OTLP/JSON)."""
    if not isinstance(value, dict):
        return value
    if depth > MAX_JSON_DEPTH:
        raise TraceFormatError(f"value nested more than {MAX_JSON_DEPTH} levels deep")
    for key in ("string_value", "stringValue"):
        if key in value:
            return value[key]
    for key in ("int_value", "intValue"):
        if key in value:
            return _number(int, value[key])
    for key in ("double_value", "doubleValue"):
        if key in value:
            return _number(float, value[key])
    for key in ("bool_value", "boolValue"):
        if key in value:
            return bool(value[key])
    for key in ("bytes_value", "bytesValue"):
        if key in value:
            return value[key]
    for key in ("array_value", "arrayValue"):
        if key in value:
            return [otlp_value(item, depth + 1) for item in _items(value[key], what=key)]
    for key in ("kvlist_value", "kvlistValue"):
        if key in value:
            return otlp_attributes(_items(value[key], what=key), depth + 1)
    return None


def otlp_attributes(items: Any, depth: int = 1) -> dict[str, Any]:
    """``[{"key": k, "value": AnyValue}]`` → ``{k: python value}``; plain dicts pass through."""
    if isinstance(items, dict):
        return items
    if not isinstance(items, list):
        raise TraceFormatError("attributes must be a list of key/value pairs or an object")
    result: dict[str, Any] = {}
    for item in items:
        if not isinstance(item, dict) or "key" not in item:
            raise TraceFormatError("attribute without a key")
        try:
            result[str(item["key"])] = otlp_value(item.get("value"), depth)
        except TraceFormatError as exc:
            raise TraceFormatError(f"attribute {str(item['key'])[:80]!r}: {exc}") from None
    return result


def as_str_dict(value: Any, *, what: str) -> dict[str, str]:
    """Tags and metadata: string → string maps (MLflow's REST API also sends ``[{key, value}]``)."""
    if value is None:
        return {}
    if isinstance(value, list):
        value = {str(item.get("key")): item.get("value") for item in value if isinstance(item, dict)}
    if not isinstance(value, dict):
        raise TraceFormatError(f"{what} must be an object")
    return {str(k): v if isinstance(v, str) else dump_json(v, what=what) for k, v in value.items()}


def preview(value: Any, limit: int = 1000) -> str:
    """The start of a value as JSON text; empty for a value too deep to serialize (refused later anyway)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value[:limit]
    try:
        return orjson.dumps(value).decode()[:limit]
    except orjson.JSONEncodeError:
        return ""
