"""Input validated by DRF serializers, in a view (`ValidatedInputMixin`) or not (`checked`): errors named by path."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory

from llm_infra_django.drf.validation import ValidatedInputMixin, checked
from llm_infra_django.errors import ValidationError


class TagSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=5)


class NoteSerializer(serializers.Serializer):
    text = serializers.CharField()
    tags = TagSerializer(many=True, required=False)
    scores = serializers.ListField(child=serializers.IntegerField(), required=False)

    def validate_text(self, value: str) -> str:
        return f"{self.context['prefix']}{value}"


class NoteView(ValidatedInputMixin, generics.GenericAPIView):
    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "prefix": "re: "}

    def post(self, request: Request) -> Response:
        return Response(self.validated(NoteSerializer, request.data), status=201)


def post(body: dict[str, Any]) -> Response:
    request = APIRequestFactory().post("/notes/", body, format="json")
    response: Response = NoteView.as_view()(request)
    return response


def test_a_view_validates_with_its_serializer_context() -> None:
    # when
    response = post({"text": "hello", "scores": [1, 2]})

    # then
    assert response.status_code == 201
    assert response.data == {"text": "re: hello", "scores": [1, 2]}


def test_a_view_names_each_offending_field_by_its_path() -> None:
    # when
    response = post({"tags": [{"name": "ok"}, {"name": "too long"}], "scores": [1, "many"]})

    # then
    assert response.status_code == 400
    assert response.data["error"]["code"] == "validation_error"
    assert response.data["error"]["details"]["fields"] == {
        "text": ["This field is required."],
        "tags[1].name": ["Ensure this field has no more than 5 characters."],
        "scores[1]": ["A valid integer is required."],
    }


def test_a_checked_serializer_is_given_back_once_valid_and_its_errors_are_named_by_path() -> None:
    # given
    valid = NoteSerializer(data={"text": "hi"}, context={"prefix": ""})
    invalid = NoteSerializer(data={"text": "hi", "scores": ["x"]}, context={"prefix": ""})

    # when
    result = checked(valid)
    with pytest.raises(ValidationError) as refused:
        checked(invalid)

    # then
    assert result is valid and result.validated_data == {"text": "hi"}
    assert refused.value.details == {"fields": {"scores[0]": ["A valid integer is required."]}}
