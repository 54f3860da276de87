"""Cache value serializers: JSON only, so nothing read back from Redis can execute code (unlike pickle)."""

from __future__ import annotations

import datetime
import uuid
from decimal import Decimal
from typing import Any

import orjson
from django.utils.functional import Promise

# A tagged value is a two-key object {"$t": type name, "$v": JSON payload}; a user dict that itself has a "$t"
# key is wrapped the same way (type "dict"), so no user data can be mistaken for a tag.
TAG = "$t"
PAYLOAD = "$v"
_TAG_MARKER = b'"$t"'


class JSONSerializer:
    """JSON via orjson with exact round trips for `Decimal`, `datetime`, `date`, `time`, `timedelta` and `UUID`.

    Those six types are written as tagged objects and come back as the same type and value (an aware datetime comes
    back with a fixed UTC offset in place of a named zone). Tuples come back as lists and non-string dict keys as
    strings, as with any JSON. Any other type raises `TypeError` when stored.
    """

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        """Serializers are built by the client with the cache's OPTIONS (django-redis' interface); none are used."""

    def dumps(self, value: Any) -> bytes:
        return orjson.dumps(_encode(value), option=orjson.OPT_NON_STR_KEYS)

    def loads(self, value: bytes) -> Any:
        """The stored value; `ValueError` when the bytes are not something `dumps` wrote."""
        data = orjson.loads(value)
        if _TAG_MARKER not in value:
            return data
        try:
            return _decode(data)
        except (KeyError, TypeError, IndexError, AttributeError, ArithmeticError) as exc:
            raise ValueError(f"Malformed tagged value in the cache: {exc!r}") from exc


def _encode(value: Any) -> Any:
    kind = type(value)
    if value is None or kind is str or kind is int or kind is float or kind is bool:
        return value
    if isinstance(value, dict):
        encoded = {key: _encode(item) for key, item in value.items()}
        return {TAG: "dict", PAYLOAD: encoded} if TAG in value else encoded
    if isinstance(value, (list, tuple)):
        return [_encode(item) for item in value]
    if isinstance(value, (str, int, float)):  # subclasses: str enums, int enums, SafeString…
        return value
    if isinstance(value, Decimal):
        return {TAG: "decimal", PAYLOAD: str(value)}
    if isinstance(value, datetime.datetime):
        return {TAG: "datetime", PAYLOAD: value.isoformat()}
    if isinstance(value, datetime.date):
        return {TAG: "date", PAYLOAD: value.isoformat()}
    if isinstance(value, datetime.time):
        return {TAG: "time", PAYLOAD: value.isoformat()}
    if isinstance(value, datetime.timedelta):
        return {TAG: "timedelta", PAYLOAD: [value.days, value.seconds, value.microseconds]}
    if isinstance(value, uuid.UUID):
        return {TAG: "uuid", PAYLOAD: str(value)}
    if isinstance(value, Promise):  # lazy translations
        return str(value)
    raise TypeError(f"Cannot store a {kind.__name__} in the cache: only JSON types and {', '.join(_DECODERS)}")


_DECODERS: dict[str, Any] = {
    "decimal": Decimal,
    "datetime": datetime.datetime.fromisoformat,
    "date": datetime.date.fromisoformat,
    "time": datetime.time.fromisoformat,
    "timedelta": lambda parts: datetime.timedelta(days=parts[0], seconds=parts[1], microseconds=parts[2]),
    "uuid": uuid.UUID,
}


def _decode(data: Any) -> Any:
    if isinstance(data, list):
        return [_decode(item) for item in data]
    if not isinstance(data, dict):
        return data
    if TAG in data and len(data) == 2 and PAYLOAD in data:
        tag = data[TAG]
        if tag == "dict":
            return {key: _decode(item) for key, item in data[PAYLOAD].items()}
        return _DECODERS[tag](data[PAYLOAD])
    return {key: _decode(item) for key, item in data.items()}
