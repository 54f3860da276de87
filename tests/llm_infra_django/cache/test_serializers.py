"""JSONSerializer: exact round trips for Decimal, datetime, UUID and friends; JSON (never pickle) on the wire."""

from __future__ import annotations

import datetime
import uuid
from decimal import Decimal

import orjson
import pytest

from llm_infra_django.cache.serializers import JSONSerializer

NESTED = {
    "tenant": {"slug": "acme", "tier": "enterprise", "active": True, "quota": None},
    "prices": [Decimal("0.0000125000"), Decimal("12.50"), Decimal("-1E+3")],
    "when": datetime.datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=datetime.UTC),
    "naive": datetime.datetime(2026, 3, 1, 12, 30),
    "day": datetime.date(2026, 2, 28),
    "at": datetime.time(23, 59, 59, 1),
    "window": datetime.timedelta(days=-1, seconds=5, microseconds=7),
    "ids": [uuid.UUID("12345678-1234-5678-1234-567812345678")],
    "deep": [[{"a": [1, 2.5, "three", {"b": Decimal("1.10")}]}]],
    "looks_tagged": {"$t": "decimal", "$v": "1"},
}


def test_nested_values_round_trip_with_their_types():
    # given
    serializer = JSONSerializer()

    # when
    restored = serializer.loads(serializer.dumps(NESTED))

    # then
    assert restored == NESTED
    assert isinstance(restored["prices"][0], Decimal)
    assert str(restored["prices"][1]) == "12.50"
    assert restored["when"].tzinfo is not None
    assert isinstance(restored["ids"][0], uuid.UUID)
    assert restored["looks_tagged"] == {"$t": "decimal", "$v": "1"}


def test_output_is_plain_json_text():
    # given
    serializer = JSONSerializer()

    # when
    raw = serializer.dumps(NESTED)

    # then
    decoded = orjson.loads(raw)
    assert decoded["prices"][1] == {"$t": "decimal", "$v": "12.50"}
    assert decoded["ids"][0] == {"$t": "uuid", "$v": "12345678-1234-5678-1234-567812345678"}
    assert decoded["looks_tagged"] == {"$t": "dict", "$v": {"$t": "decimal", "$v": "1"}}


def test_plain_json_values_are_written_untagged():
    # given
    value = {"name": "gpt", "tags": ["a", "b"], "n": 3, "ratio": 0.5, "ok": False}

    # when
    raw = JSONSerializer().dumps(value)

    # then
    assert raw == orjson.dumps(value)


def test_tuples_come_back_as_lists_and_non_string_keys_as_strings():
    # given
    serializer = JSONSerializer()

    # when
    restored = serializer.loads(serializer.dumps({"pair": (1, 2), 7: "seven"}))

    # then
    assert restored == {"pair": [1, 2], "7": "seven"}


def test_unsupported_types_are_refused_when_stored():
    # given
    serializer = JSONSerializer()

    # when / then
    with pytest.raises(TypeError, match="Cannot store a object"):
        serializer.dumps({"thing": object()})


@pytest.mark.parametrize(
    "raw",
    [b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01.", b'{"$t": "pickle", "$v": "x"}', b'{"$t": "decimal"'],
)
def test_bytes_it_did_not_write_raise_value_error(raw):
    # given
    serializer = JSONSerializer()

    # when / then
    with pytest.raises(ValueError):
        serializer.loads(raw)
