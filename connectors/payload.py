"""Reading untrusted JSON and form bodies with errors that name the path of the bad value.

Every helper raises `BadPayload` with a message shaped `<path>: <what is wrong>`, e.g.
`events[2].timestamp: missing`, so a platform engineer can fix the sender without reading our code.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from connectors.base import BadPayload

MAX_ID_LENGTH = 200
MAX_TEXT_LENGTH = 20_000


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def at(path: str, key: str | int) -> str:
    """The path of `key` inside `path`: `events` + 2 -> `events[2]`, `events[2]` + `id` -> ..."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def load_json(body: bytes) -> Any:
    """Decode a JSON body; raise BadPayload with the reason, line and column when it is not JSON."""
    try:
        # UTF-8 and a leading byte order mark dropped, as "utf-8-sig" would (whose Python-level
        # codec costs five times the decoding, and counts a bad byte's offset after the mark).
        text = body.decode()
    except UnicodeDecodeError as exc:
        raise BadPayload(f"body is not valid UTF-8: byte {exc.start}") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadPayload(
            f"body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:
        raise BadPayload("body is not valid JSON: nested too deeply") from None
    # Only a \u escape can produce NUL or a lone surrogate, which no database stores.
    return _storable(value) if "\\u" in text else value


def load_json_object(body: bytes) -> dict[str, Any]:
    """Decode a JSON body that must be one object, as most platforms post."""
    value = load_json(body)
    if not isinstance(value, dict):
        raise BadPayload(f"body: expected a JSON object, got {json_type(value)}")
    return value


def storable_text(text: str) -> str:
    """`text` with NUL and unpaired surrogates (which databases refuse) replaced by U+FFFD."""
    return _UNSTORABLE.sub("\ufffd", text)


# json.loads joins escaped surrogate pairs into one character, so any surrogate left is unpaired.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable(value: Any) -> Any:
    """A decoded JSON value with every string made storable (iterative: depth is untrusted)."""
    if isinstance(value, str):
        return storable_text(value)
    root: list[Any] = [value]
    stack: list[Any] = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            for index, item in enumerate(node):
                if isinstance(item, str):
                    node[index] = storable_text(item)
                elif isinstance(item, list | dict):
                    stack.append(item)
        elif isinstance(node, dict):
            for key in list(node):
                item = node[key]
                clean_key = storable_text(key)
                if clean_key != key:
                    del node[key]
                if isinstance(item, str):
                    item = storable_text(item)
                elif isinstance(item, list | dict):
                    stack.append(item)
                node[clean_key] = item
    return root[0]


def load_form(body: bytes) -> dict[str, str]:
    """Decode an application/x-www-form-urlencoded body (the last value wins for repeated keys)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadPayload(f"body is not valid UTF-8: byte {exc.start}") from None
    return {
        storable_text(key): storable_text(value)
        for key, value in parse_qsl(text, keep_blank_values=True)
    }


def as_object(value: object, path: str) -> Mapping[str, Any]:
    """`value` itself, when it is a JSON object."""
    if not isinstance(value, dict):
        raise BadPayload(f"{path}: expected an object, got {json_type(value)}")
    return value


def as_list(value: object, path: str) -> list[Any]:
    """`value` itself, when it is a JSON array."""
    if not isinstance(value, list):
        raise BadPayload(f"{path}: expected an array, got {json_type(value)}")
    return value


def req(obj: Mapping[str, Any], key: str, path: str) -> Any:
    """`obj[key]`, which must be present and not null."""
    value = obj.get(key)
    if value is None:
        raise BadPayload(f"{at(path, key)}: missing")
    return value


def req_object(obj: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    """A required object member."""
    return as_object(req(obj, key, path), at(path, key))


def opt_object(obj: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    """An optional object member; an empty mapping when absent or null."""
    value = obj.get(key)
    return {} if value is None else as_object(value, at(path, key))


def req_list(obj: Mapping[str, Any], key: str, path: str) -> list[Any]:
    """A required array member."""
    return as_list(req(obj, key, path), at(path, key))


def opt_list(obj: Mapping[str, Any], key: str, path: str) -> list[Any]:
    """An optional array member; an empty list when absent or null."""
    value = obj.get(key)
    return [] if value is None else as_list(value, at(path, key))


def as_str(value: object, path: str) -> str:
    """`value` itself, when it is a string."""
    if not isinstance(value, str):
        raise BadPayload(f"{path}: expected a string, got {json_type(value)}")
    return value


def req_str(obj: Mapping[str, Any], key: str, path: str) -> str:
    """A required, non-empty string member."""
    value = obj.get(key)
    if type(value) is str and value:
        return value  # the usual case, without building the member's path
    value = as_str(req(obj, key, path), at(path, key))
    if not value:
        raise BadPayload(f"{at(path, key)}: empty")
    return value


def opt_str(obj: Mapping[str, Any], key: str, path: str) -> str | None:
    """An optional string member; None when absent, null or empty."""
    value = obj.get(key)
    if value is None:
        return None
    if type(value) is str:
        return value or None
    return as_str(value, at(path, key)) or None


def id_str(obj: Mapping[str, Any], key: str, path: str) -> str:
    """A required identifier: a string or an integer (platforms use both), checked by `check_id`."""
    value = req(obj, key, path)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    value = as_str(value, at(path, key))
    return check_id(value, at(path, key))


def opt_id_str(obj: Mapping[str, Any], key: str, path: str) -> str | None:
    """An optional identifier (string or integer); None when absent, null or empty."""
    if obj.get(key) in (None, ""):
        return None
    return id_str(obj, key, path)


# Unicode's control characters (general category Cc): U+0000-U+001F and U+007F-U+009F.
_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f]")


def check_id(value: str, path: str) -> str:
    """`value` when it is usable as an id: non-empty, short, and free of control characters."""
    if not value:
        raise BadPayload(f"{path}: empty")
    if len(value) > MAX_ID_LENGTH:
        raise BadPayload(f"{path}: longer than {MAX_ID_LENGTH} characters")
    # Ids end up in log lines, SQL keys and card buttons; a stray newline there is an injection.
    if _CONTROL_CHARACTER.search(value) is not None:
        raise BadPayload(f"{path}: contains a control character")
    return value


def req_id(obj: Mapping[str, Any], key: str, path: str) -> str:
    """A required string identifier, checked by `check_id`."""
    value = req_str(obj, key, path)
    if len(value) <= MAX_ID_LENGTH and _CONTROL_CHARACTER.search(value) is None:
        return value
    return check_id(value, at(path, key))


def check_text(value: str | None, path: str) -> str | None:
    """`value` when it is at most MAX_TEXT_LENGTH characters long."""
    if value is not None and len(value) > MAX_TEXT_LENGTH:
        raise BadPayload(f"{path}: longer than {MAX_TEXT_LENGTH} characters")
    return value


def opt_bool(obj: Mapping[str, Any], key: str, path: str) -> bool | None:
    """An optional boolean member."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise BadPayload(f"{at(path, key)}: expected a boolean, got {json_type(value)}")
    return value


def as_number(value: object, path: str) -> float:
    """`value` itself as a float, when it is a JSON number (booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadPayload(f"{path}: expected a number, got {json_type(value)}")
    return float(value)


def confidence(value: object, path: str) -> float | None:
    """An optional confidence score in [0, 1]."""
    if value is None:
        return None
    number = as_number(value, path)
    if not 0.0 <= number <= 1.0:
        raise BadPayload(f"{path}: must be between 0 and 1, got {number:g}")
    return number


_ISO_DATE_START = re.compile(r"\d{4}-?\d{2}-?\d{2}")


def iso_time(value: object, path: str, key: str | None = None) -> datetime:
    """An ISO 8601 time with a zone (Z or an offset), converted to aware UTC. With `key`, the
    value is member `key` of `path` (that path is built only for an error)."""
    text = value if type(value) is str else as_str(value, _member(path, key))
    try:
        parsed = datetime.fromisoformat(text) if _ISO_DATE_START.match(text) else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise BadPayload(f"{_member(path, key)}: not an ISO 8601 time: {text!r}")
    if parsed.tzinfo is None:
        raise BadPayload(f"{_member(path, key)}: no time zone (add Z or an offset): {text!r}")
    return parsed.astimezone(UTC)


def _member(path: str, key: str | None) -> str:
    return path if key is None else at(path, key)


def epoch_time(value: object, path: str, *, milliseconds: bool = False) -> datetime:
    """A Unix time in seconds (or milliseconds), as a number or a string of digits."""
    number: float
    if isinstance(value, str) and re.fullmatch(r"\d+(\.\d+)?", value):
        number = float(value)
    else:
        number = as_number(value, path)
    if milliseconds:
        number /= 1000
    try:
        return datetime.fromtimestamp(number, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise BadPayload(f"{path}: not a Unix time: {value!r}") from None


def stable_id(*parts: object) -> str:
    """A deterministic event id from the parts that identify an event, so retries dedupe."""
    digest = hashlib.sha256(json.dumps(parts, default=str, ensure_ascii=False).encode()).hexdigest()
    return f"h-{digest[:32]}"


def loose_object(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """`obj[key]` when it is an object, else empty: for optional enrichment we can live without."""
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def loose_str(obj: Mapping[str, Any], key: str) -> str | None:
    """`obj[key]` when it is a non-empty string (or a number, as text), else None."""
    value = obj.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) and value else None


def loose_confidence(value: object) -> float | None:
    """A platform's confidence as a float in [0, 1]: a number, a numeric string or `{"score": n}`.

    Platforms round differently (1.0000001 happens); out-of-range values are clamped, not refused.
    Anything unreadable is None: a missing score must not cost the customer their message.
    """
    if isinstance(value, dict):
        value = value.get("score")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    return min(1.0, max(0.0, float(value)))
