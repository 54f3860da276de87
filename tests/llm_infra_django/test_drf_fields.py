"""ListFilterField: a list filter from repeated and comma-separated query values or a list, bounded in values and
characters before any value is validated."""

from __future__ import annotations

from typing import Any

import pytest
from django.http import QueryDict
from django.test import override_settings
from rest_framework import serializers

from llm_infra_django.drf.fields import ListFilterField


class FilterSerializer(serializers.Serializer):
    tags = ListFilterField(child=serializers.CharField(), required=False)
    colours = ListFilterField(child=serializers.ChoiceField(choices=["red", "blue"]), required=False, max_length=3)


def errors(data: Any) -> dict[str, list[str]]:
    serializer = FilterSerializer(data=data)
    assert not serializer.is_valid()
    return {name: [str(message) for message in messages] for name, messages in serializer.errors.items()}


@pytest.mark.parametrize(
    "data",
    [
        QueryDict("tags=a,b&tags=c"),
        QueryDict("tags=a, b ,,c"),
        {"tags": ["a", "b,c"]},
        {"tags": "a,b,c"},
    ],
)
def test_values_come_from_repeated_and_comma_separated_parameters_or_a_list(data: Any) -> None:
    serializer = FilterSerializer(data=data)
    assert serializer.is_valid(), serializer.errors
    assert serializer.validated_data["tags"] == ["a", "b", "c"]


def test_more_values_than_the_default_bound_are_refused_by_name() -> None:
    assert FilterSerializer(data={"tags": [f"t{i}" for i in range(20)]}).is_valid()
    assert errors({"tags": ",".join(f"t{i}" for i in range(21))}) == {"tags": ["At most 20 values."]}


def test_a_field_sets_its_own_bound_and_is_refused_before_its_values_are_validated() -> None:
    assert errors({"colours": ["green"] * 10_000}) == {"colours": ["At most 3 values."]}
    assert set(errors({"colours": ["red", "green"]})) == {"colours"}


def test_a_value_longer_than_the_bound_is_refused_by_name() -> None:
    assert FilterSerializer(data={"tags": ["x" * 100]}).is_valid()
    assert errors({"tags": ["ok", "x" * 101]}) == {"tags": ["Each value has at most 100 characters."]}


@override_settings(LLM_INFRA={"LIST_FILTER_MAX_ITEMS": 2, "LIST_FILTER_MAX_ITEM_LENGTH": 3})
def test_the_bounds_are_settings_read_at_call_time() -> None:
    assert errors({"tags": "a,b,c"}) == {"tags": ["At most 2 values."]}
    assert errors({"tags": "abcd"}) == {"tags": ["Each value has at most 3 characters."]}


def test_anything_but_a_string_or_a_list_is_refused() -> None:
    assert set(errors({"tags": {"a": 1}})) == {"tags"}
