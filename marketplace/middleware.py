"""Project middleware."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, StreamingHttpResponse
from whitenoise.middleware import WhiteNoiseMiddleware


class AsyncWhiteNoiseMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise, async-capable: static files are found and served without sending every request to a thread."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(get_response, *args, **kwargs)
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self._async:
            return self._acall(request)
        return super().__call__(request)

    async def _acall(self, request: HttpRequest) -> Any:
        static_file = self.find_file(request.path_info) if self.autorefresh else self.files.get(request.path_info)
        if static_file is not None:
            return _streamed_asynchronously(self.serve(static_file, request))
        return await self.get_response(request)


def _streamed_asynchronously(response: StreamingHttpResponse) -> StreamingHttpResponse:
    """The response with its file read in a thread and handed over as an asynchronous iterator: what Django's ASGI
    handler does with a synchronous one, minus the warning it prints for each (a raw line amid the log's)."""
    chunks = response.streaming_content

    async def read() -> AsyncIterator[bytes]:
        for chunk in await sync_to_async(list, thread_sensitive=False)(chunks):
            yield chunk

    response.streaming_content = read()
    return response
