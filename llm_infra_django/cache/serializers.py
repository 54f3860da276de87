"""Serializers for the cache backend."""

from __future__ import annotations

from typing import Any

import orjson
from django.core.serializers.json import DjangoJSONEncoder


class JSONSerializer:
    """JSON via orjson (datetimes, UUIDs, Decimals as strings); unlike pickle, safe to read from the network."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self._encoder = DjangoJSONEncoder()

    def dumps(self, value: Any) -> bytes:
        return orjson.dumps(value, default=self._encoder.default, option=orjson.OPT_NON_STR_KEYS)

    def loads(self, value: bytes) -> Any:
        return orjson.loads(value)
