"""Client traffic for multi-process tests: proxied calls (streamed or not) from concurrent clients in a background
thread, each outcome kept (status, request id, body or stream events) for the accounting checks."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson


@dataclass
class Outcome:
    """What one client saw of one call."""

    server: str
    stream: bool
    started: float
    ended: float = 0.0
    status: int | None = None  # None: no HTTP answer (connection refused or cut before the headers)
    request_id: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # parsed JSON of a non-streamed answer (or the raw text when it is not JSON)
    events: list[str] = field(default_factory=list)
    completed: bool = False  # a stream that ended with [DONE], or a non-streamed answer read whole
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def usage(self) -> dict[str, Any] | None:
        if self.stream:
            for event in reversed(self.events):
                if '"usage"' in event:
                    chunk = orjson.loads(event[len("data: ") :])
                    if chunk.get("usage"):
                        return chunk["usage"]
            return None
        return self.body.get("usage") if isinstance(self.body, dict) else None


def chat_body(model: str, *, stream: bool = False, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8, **extra}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


async def call(
    client: httpx.AsyncClient, server: str, secret: str, body: dict[str, Any], *, timeout: float = 30
) -> Outcome:
    """One proxied chat completion; never raises for transport errors (they are in the outcome)."""
    stream = bool(body.get("stream"))
    outcome = Outcome(server=server, stream=stream, started=time.monotonic())
    try:
        async with client.stream(
            "POST",
            f"{server}/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {secret}"},
            timeout=timeout,
        ) as response:
            outcome.status = response.status_code
            outcome.headers = dict(response.headers)
            outcome.request_id = response.headers.get("x-request-id")
            if stream and response.status_code == 200:
                async for line in response.aiter_lines():
                    if line:
                        outcome.events.append(line)
                outcome.completed = bool(outcome.events) and outcome.events[-1] == "data: [DONE]"
            else:
                raw = await response.aread()
                try:
                    outcome.body = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    outcome.body = raw.decode(errors="replace")
                outcome.completed = True
    except httpx.HTTPError as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
    outcome.ended = time.monotonic()
    return outcome


def call_sync(server: str, secret: str, body: dict[str, Any], *, timeout: float = 30) -> Outcome:
    async def run() -> Outcome:
        async with httpx.AsyncClient() as client:
            return await call(client, server, secret, body, timeout=timeout)

    return asyncio.run(run())


def burst(
    servers: Sequence[str], secret: str, bodies: Sequence[dict[str, Any]], *, timeout: float = 30
) -> list[Outcome]:
    """All `bodies` at once, spread over the servers; outcomes in the order of the bodies."""

    async def run() -> list[Outcome]:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=len(bodies) + 1)) as client:
            return list(
                await asyncio.gather(
                    *(
                        call(client, servers[i % len(servers)], secret, body, timeout=timeout)
                        for i, body in enumerate(bodies)
                    )
                )
            )

    return asyncio.run(run())


class Load:
    """`clients` concurrent clients calling the servers in turn until `stop()`, every outcome kept in `outcomes`
    (a list shared with the running thread: read it under `lock`, or after `stop()`)."""

    def __init__(
        self,
        servers: Sequence[str],
        secret: str,
        model: str,
        *,
        clients: int = 6,
        stream_every: int = 3,
        pause: float = 0.02,
        timeout: float = 30,
    ) -> None:
        self.servers = list(servers)
        self.secret = secret
        self.model = model
        self.clients = clients
        self.stream_every = stream_every
        self.pause = pause
        self.timeout = timeout
        self.outcomes: list[Outcome] = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._counter = itertools.count()

    def start(self) -> Load:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 60) -> list[Outcome]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            assert not self._thread.is_alive(), "the load did not stop"
        return self.outcomes

    def since(self, moment: float) -> list[Outcome]:
        with self.lock:
            return [o for o in self.outcomes if o.started >= moment]

    def wait_for(self, predicate: Any, seconds: float = 30, what: str = "load condition") -> list[Outcome]:
        """Wait until `predicate(outcomes so far)` holds; returns the outcomes then."""
        deadline = time.monotonic() + seconds
        while True:
            with self.lock:
                snapshot = list(self.outcomes)
            if predicate(snapshot):
                return snapshot
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not met within {seconds} s")
            time.sleep(0.05)

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=self.clients * 2)
        async with httpx.AsyncClient(limits=limits) as client:
            await asyncio.gather(*(self._client(client) for _ in range(self.clients)))

    async def _client(self, client: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            index = next(self._counter)
            stream = self.stream_every > 0 and index % self.stream_every == 0
            server = self.servers[index % len(self.servers)]
            outcome = await call(
                client, server, self.secret, chat_body(self.model, stream=stream), timeout=self.timeout
            )
            with self.lock:
                self.outcomes.append(outcome)
            await asyncio.sleep(self.pause if outcome.status is not None else max(self.pause, 0.05))
