"""Fields of query serializers: list-valued filters bounded before they reach a query (the REST views and the GraphQL
resolvers validate their arguments with the same serializers)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from llm_infra_django.conf import infra_settings

__all__ = ["ListFilterField"]


class ListFilterField(serializers.ListField):
    """A list-valued filter: repeated query parameters and/or comma-separated values (`?tags=a,b&tags=c`), or a list.

    Each value costs the query a condition, so more values than the field's `max_length` (by default
    `LLM_INFRA["LIST_FILTER_MAX_ITEMS"]`), or a value longer than `LLM_INFRA["LIST_FILTER_MAX_ITEM_LENGTH"]`, is
    refused with the field's name before any value is validated or used.
    """

    default_error_messages = {
        "too_many": "At most {limit} values.",
        "too_long": "Each value has at most {limit} characters.",
    }

    def to_internal_value(self, data: Any) -> list[Any]:
        if isinstance(data, str):
            data = [data]
        if not isinstance(data, (list, tuple)):
            self.fail("not_a_list", input_type=type(data).__name__)
        values = [part.strip() for value in data for part in str(value).split(",") if part.strip()]
        limit = self.max_length if self.max_length is not None else infra_settings.LIST_FILTER_MAX_ITEMS
        if len(values) > limit:
            self.fail("too_many", limit=limit)
        longest = infra_settings.LIST_FILTER_MAX_ITEM_LENGTH
        if any(len(value) > longest for value in values):
            self.fail("too_long", limit=longest)
        return super().to_internal_value(values)
