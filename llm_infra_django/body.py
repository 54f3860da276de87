"""Reading a request body within a limit: refused (413) from its declared length before it is read, and from its
actual length after (a body sent without `Content-Length`), never a 500 from Django's own upload limit."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig

from llm_infra_django.errors import PayloadTooLargeError


def too_large(limit: int, size: int | None, *, code: str | None = None) -> PayloadTooLargeError:
    """The 413 of a body of `size` bytes (None: not known yet) over `limit`, naming the field `body`."""
    told = f" ({size} bytes)" if size else ""
    return PayloadTooLargeError(
        f"The request body{told} is larger than the limit of {limit} bytes.",
        details={"limit": limit, **({"size": size} if size else {}), "field": "body"},
        code=code,
    )


def read_body(request: Any, limit: int, *, code: str | None = None) -> bytes:
    """The raw body of `request`, at most `limit` bytes; else `PayloadTooLargeError` (with `code`, if given)."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except (TypeError, ValueError):
        declared = 0
    if declared > limit:
        raise too_large(limit, declared, code=code)
    try:
        raw = request.body
    except RequestDataTooBig:
        raise too_large(limit, declared or None, code=code) from None
    if len(raw) > limit:
        raise too_large(limit, len(raw), code=code)
    return raw
