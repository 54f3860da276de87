"""The OpenAPI AutoSchema documents the error envelope on every operation, where the view documents none itself."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import path
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from llm_infra_django.drf.schema import AutoSchema, ErrorEnvelopeSerializer, ErrorResponses

ENVELOPE = "#/components/schemas/ErrorEnvelope"


class NoteSerializer(serializers.Serializer):
    text = serializers.CharField()


class NoteView(APIView):  # documented by `REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]`: llm_infra_django's AutoSchema
    @extend_schema(responses={200: NoteSerializer})
    def get(self, request: Request) -> Response:
        return Response({"text": "hi"})

    @extend_schema(
        request=NoteSerializer,
        responses={
            201: NoteSerializer,
            409: OpenApiResponse(ErrorEnvelopeSerializer, description="A note with this text exists."),
        },
    )
    def post(self, request: Request) -> Response:
        return Response(request.data, status=201)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request) -> Response:
        return Response(status=204)


@pytest.fixture(scope="module")
def operations() -> dict[str, Any]:
    schema = SchemaGenerator(patterns=[path("notes/", NoteView.as_view())]).get_schema(request=None, public=True)
    return schema["paths"]["/notes/"]


def test_every_operation_documents_the_common_errors_with_the_envelope(operations: dict[str, Any]) -> None:
    for method in ("get", "post", "delete"):
        responses = operations[method]["responses"]
        for code in ("400", "401", "403", "404", "429"):
            assert responses[code]["content"]["application/json"]["schema"]["$ref"] == ENVELOPE, (method, code)


def test_conflicts_go_with_writes_and_unreadable_bodies_with_bodies(operations: dict[str, Any]) -> None:
    assert not {"409", "415"} & set(operations["get"]["responses"])
    assert {"409", "415"} <= set(operations["post"]["responses"])
    assert "409" in operations["delete"]["responses"] and "415" not in operations["delete"]["responses"]


def test_what_the_view_documents_wins_and_codes_are_in_order(operations: dict[str, Any]) -> None:
    responses = operations["post"]["responses"]

    assert responses["409"]["description"] == "A note with this text exists."
    assert responses["201"]["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/Note"
    assert list(responses) == sorted(responses)


def test_an_error_table_describes_its_codes_and_falls_back_to_the_common_descriptions() -> None:
    # given
    errors = ErrorResponses({402: "A quota is exhausted.", 404: "No note has this id."})

    # when
    responses = errors(400, 402, 404)

    # then
    assert list(responses) == [400, 402, 404]
    assert all(response.response is ErrorEnvelopeSerializer for response in responses.values())
    assert responses[400].description == AutoSchema.error_descriptions[400]
    assert responses[402].description == "A quota is exhausted."
    assert responses[404].description == "No note has this id."
    with pytest.raises(KeyError):
        errors(418)
