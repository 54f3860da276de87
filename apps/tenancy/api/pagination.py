"""Pagination of the tenancy list endpoints: limit/offset, 50 rows by default, at most 100."""

from rest_framework.pagination import LimitOffsetPagination


class TenancyPagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 100
