"""Pagination of the consumption API: cursors for the usage ledger, limit/offset for keys."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination, LimitOffsetPagination
from rest_framework.request import Request

from llm_infra_django.errors import ValidationError

MAX_PAGE = 100


class UsageCursorPagination(CursorPagination):
    """Newest first; stable under concurrent inserts; `?limit=` up to 100 (50 by default)."""

    ordering = ("-started_at", "-id")
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = MAX_PAGE

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
            raise ValidationError(fields={"limit": [f"A whole number from 1 to {MAX_PAGE}."]})
        return int(raw)

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list[Any] | None:
        try:
            return super().paginate_queryset(queryset, request, view)
        except NotFound:
            raise ValidationError(fields={"cursor": ["Invalid cursor: use the `next` or `previous` link."]}) from None


class KeyPagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = MAX_PAGE
