"""ASGI helpers: a Django handler with its own (short) middleware list, and routing by path prefix.

Hot paths (e.g. an API gateway under `/v1/`) need not pay for sessions, CSRF, messages and the like: serve them
with `LeanASGIHandler(["llm_infra_django.middleware.RequestContextMiddleware",
"llm_infra_django.middleware.SecurityHeadersMiddleware"])` and route the prefix to it.
Every middleware of a lean handler must be async-capable, so requests never hop to a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from django.core.exceptions import ImproperlyConfigured, RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.exception import convert_exception_to_response
from django.urls import set_script_prefix
from django.utils.module_loading import import_string

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


class LeanASGIHandler(ASGIHandler):
    """Django's ASGI handler with the given middleware instead of `settings.MIDDLEWARE`, and no per-request thread.

    Django's handler sends `request_started` through a thread and closes each response in one (a thread created and
    joined per request). Here no request-level signal goes through a thread: `request_started` is not sent (its
    receivers reset query logs and recycle the connections of the thread that serves the request, and this handler
    serves from the event loop, which holds no connection) and the response is closed inline.
    """

    def __init__(self, middleware: Sequence[str]) -> None:
        self.middleware_paths = list(middleware)
        super().__init__()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Any, send: Any) -> None:
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            assert error_response is not None  # create_request answers a request or the response refusing it
            body_file.close()
            await self.send_response(error_response, send)
            error_response.close()
            return

        async def process_request() -> Any:
            response = await self.run_get_response(request)
            with contextlib.suppress(asyncio.CancelledError):  # the client left while the response was sent
                await self.send_response(response, send)
            return response

        # As Django does: watch for the client leaving while the response is produced, and cancel the view then.
        tasks = [asyncio.create_task(self.listen_for_disconnect(receive)), asyncio.create_task(process_request())]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                with contextlib.suppress(RequestAborted):
                    task.result()
            else:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        with contextlib.suppress(asyncio.CancelledError):
            tasks[1].result().close()
        body_file.close()

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        # django-stubs leaves out BaseHandler's private _get_response(_async), which Django's load_middleware wraps too.
        inner = self._get_response_async if is_async else self._get_response  # type: ignore[attr-defined]
        handler = convert_exception_to_response(inner)
        for path in reversed(self.middleware_paths):
            middleware = import_string(path)
            if not getattr(middleware, "async_capable", False):
                raise ImproperlyConfigured(f"{path} is not async-capable; a lean handler takes async middleware only.")
            instance = middleware(handler)
            if hasattr(instance, "process_view"):
                self._view_middleware.insert(0, self.adapt_method_mode(is_async, instance.process_view))
            if hasattr(instance, "process_template_response"):
                self._template_response_middleware.append(
                    self.adapt_method_mode(is_async, instance.process_template_response)
                )
            if hasattr(instance, "process_exception"):
                self._exception_middleware.append(self.adapt_method_mode(False, instance.process_exception))
            handler = convert_exception_to_response(instance)
        self._middleware_chain = handler


def route_by_prefix(routes: Sequence[tuple[str, ASGIApp]], default: ASGIApp) -> ASGIApp:
    """An ASGI app sending HTTP requests whose path starts with a prefix to that prefix's app."""

    async def application(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path = scope.get("path", "")
            for prefix, app in routes:
                if path.startswith(prefix):
                    await app(scope, receive, send)
                    return
        await default(scope, receive, send)

    return application
