"""Helpers for GraphQL tests: post a document to /graphql as a user (session) or with an API key."""

from __future__ import annotations

from typing import Any

from django.test import Client


def gql(client: Client, query: str, variables: dict[str, Any] | None = None, **headers: str) -> Any:
    """The HTTP response of one GraphQL request."""
    return client.post(
        "/graphql", {"query": query, "variables": variables or {}}, content_type="application/json", **headers
    )


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def with_key(secret: str) -> Client:
    """A client whose every request carries `Authorization: Bearer <secret>`."""
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}")


def data(response: Any) -> dict[str, Any]:
    """The `data` of a response that must have no top-level errors."""
    body = response.json()
    assert "errors" not in body, body
    return body["data"]
