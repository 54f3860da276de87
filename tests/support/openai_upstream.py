"""A real, local OpenAI-compatible HTTP server for tests: counts requests and in-flight calls, can be slow, fail,
hang, omit usage, or stream slowly; run in a thread (`start()`) or as a process (`python -m ...`)."""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Behaviour:
    """What the server does; tests change the attributes while it runs."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.delay = 0.0
        self.status = 200
        self.include_usage = True
        self.hang = False
        self.garbage = False
        self.chunk_delay = 0.0
        # Per-request stream pace by the request's "user" field (wins over chunk_delay).
        self.chunk_delays: dict[str, float] = {}
        self.reply_words = 8
        # The usage object the server claims instead of its own count (a dishonest provider), when set.
        self.usage: dict[str, Any] | None = None
        self.disconnected = 0
        self.bodies: list[dict[str, Any]] = []
        self.request_ids: list[str] = []
        # Down: connections still open (keep-alive) are closed without an answer, as by a crashed server.
        self.down = False
        # Streams break (the connection is cut) after this many content chunks, when set.
        self.break_stream_after: int | None = None


def _reply(behaviour: Behaviour, max_tokens: int | None) -> list[str]:
    words = [f"w{i}" for i in range(behaviour.reply_words)]
    return words[:max_tokens] if max_tokens else words


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    behaviour: Behaviour

    def log_message(self, *args: Any) -> None:
        pass

    def _json(self, status: int, payload: Any) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": "local-model", "object": "model"}]})
        else:
            self._json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        b = self.behaviour
        if b.down:
            self.close_connection = True
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        with b.lock:
            b.requests += 1
            b.in_flight += 1
            b.max_in_flight = max(b.max_in_flight, b.in_flight)
            b.bodies.append(body)
            b.request_ids.append(self.headers.get("X-Request-ID") or "")
        try:
            self._answer(b, body)
        finally:
            with b.lock:
                b.in_flight -= 1

    def _answer(self, b: Behaviour, body: dict[str, Any]) -> None:
        if b.hang:
            time.sleep(30)
            return
        if b.delay:
            time.sleep(b.delay)
        if b.status >= 400:
            self._json(b.status, {"error": {"message": "upstream failure", "type": "server_error"}})
            return
        if b.garbage:
            self._json(200, b"<html>not json</html>")
            return
        words = _reply(b, body.get("max_tokens"))
        prompt_tokens = 7
        if self.path.endswith("/embeddings"):
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            self._json(
                200,
                {
                    "object": "list",
                    "model": body["model"],
                    "data": [{"object": "embedding", "index": i, "embedding": [0.1, 0.2]} for i in range(len(inputs))],
                    "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
                },
            )
            return
        chat = self.path.endswith("/chat/completions")
        if body.get("stream"):
            self._stream(b, body, words, chat, prompt_tokens)
            return
        text = " ".join(words)
        choice = (
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            if chat
            else {"index": 0, "text": text, "finish_reason": "stop"}
        )
        payload: dict[str, Any] = {
            "id": "cmpl-1",
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [choice],
        }
        if b.include_usage:
            payload["usage"] = b.usage or {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(words),
                "total_tokens": prompt_tokens + len(words),
            }
        self._json(200, payload)

    def _stream(self, b: Behaviour, body: dict[str, Any], words: list[str], chat: bool, prompt_tokens: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def send(payload: Any) -> None:
            data = b"data: " + (payload if isinstance(payload, bytes) else json.dumps(payload).encode()) + b"\n\n"
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        try:
            for index, word in enumerate(words):
                if b.break_stream_after is not None and index >= b.break_stream_after:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                text = word if index == 0 else " " + word
                delta = (
                    {"index": 0, "delta": {"content": text}, "finish_reason": None}
                    if chat
                    else {"index": 0, "text": text, "finish_reason": None}
                )
                send({"id": "s1", "object": "chat.completion.chunk", "model": body["model"], "choices": [delta]})
                pace = b.chunk_delays.get(str(body.get("user")), b.chunk_delay)
                if pace:
                    time.sleep(pace)
            send(
                {
                    "id": "s1",
                    "object": "chat.completion.chunk",
                    "model": body["model"],
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                }
            )
            if b.include_usage and (body.get("stream_options") or {}).get("include_usage"):
                send(
                    {
                        "id": "s1",
                        "object": "chat.completion.chunk",
                        "model": body["model"],
                        "choices": [],
                        "usage": b.usage
                        or {
                            "prompt_tokens": prompt_tokens,
                            "completion_tokens": len(words),
                            "total_tokens": prompt_tokens + len(words),
                        },
                    }
                )
            send(b"[DONE]")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            with b.lock:
                b.disconnected += 1


def start(
    host: str = "127.0.0.1", port: int = 0, behaviour: Behaviour | None = None
) -> tuple[ThreadingHTTPServer, Behaviour, str]:
    """Serve in a daemon thread; returns (server, behaviour, base URL ending in /v1). Pass the `behaviour` (and
    port) of a server stopped earlier to bring it back as it was."""
    behaviour = behaviour or Behaviour()
    handler = type("BoundHandler", (Handler,), {"behaviour": behaviour})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, behaviour, f"http://{host}:{server.server_address[1]}/v1"


if __name__ == "__main__":
    _, _, url = start(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print(url, flush=True)
    threading.Event().wait()
