"""How the proxy counts tokens: of a request's prompt (chat messages, completion prompts, inputs to embed) and of the
text a reply delivered, when a provider reports no usage (and, for the built-in echo provider, always)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from llm_infra_django.errors import ValidationError

# A token is a run of word characters or one punctuation/symbol character; whitespace is not a token (it travels
# with the token that follows it when a reply is streamed). An approximation of a BPE tokenizer (it is not tiktoken:
# no vocabulary, nothing downloaded), but every usage number the echo upstream reports is exact for it.
TOKEN_RE = re.compile(r"\w+|[^\w\s]")
# Each chat message costs its content's tokens, its name's tokens, its tool calls' tokens, and this much for the
# role and separators (the figure OpenAI documents for its chat format).
MESSAGE_OVERHEAD_TOKENS = 3
ROLES = ("system", "developer", "user", "assistant", "tool", "function")


def tokenize(text: str) -> list[str]:
    """The tokens of `text` (regex `\\w+|[^\\w\\s]`)."""
    return TOKEN_RE.findall(text)


def count_tokens(text: str) -> int:
    """How many tokens `text` holds: runs of word characters, plus each punctuation or symbol character.

    "Hello, world!" → ["Hello", ",", "world", "!"] → 4. An approximation of real tokenizers, exact for echo.
    """
    return sum(1 for _ in TOKEN_RE.finditer(text))


def split_pieces(text: str) -> list[str]:
    """`text` cut after each token, whitespace riding with the next token: `"".join(pieces) == text`."""
    pieces: list[str] = []
    start = 0
    for match in TOKEN_RE.finditer(text):
        pieces.append(text[start : match.end()])
        start = match.end()
    if start < len(text):
        if pieces:
            pieces[-1] += text[start:]
        else:
            pieces.append(text)
    return pieces


class FieldErrors:
    """Collects every problem of a request body, then raises one ValidationError naming each field."""

    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}

    def add(self, field: str, message: str) -> None:
        self.fields.setdefault(field, []).append(message)

    def raise_any(self) -> None:
        if self.fields:
            raise ValidationError(fields=self.fields)


def _content_text(content: Any, path: str, role: str, errors: FieldErrors) -> str:
    if isinstance(content, str):
        return content
    if content is None:
        if role != "assistant":
            errors.add(path, "Required for this role.")
        return ""
    if not isinstance(content, list) or not content:
        errors.add(path, "Give a string or a non-empty list of content parts.")
        return ""
    texts: list[str] = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, Mapping) else None
        key = "refusal" if kind == "refusal" and role == "assistant" else "text" if kind == "text" else None
        if key is None:
            errors.add(f"{path}[{index}].type", "The echo provider reads text content parts only.")
        elif not isinstance(part.get(key), str):
            errors.add(f"{path}[{index}].{key}", "Must be a string.")
        else:
            texts.append(part[key])
    return "\n".join(texts)


def _tool_call_tokens(calls: Any, path: str, errors: FieldErrors) -> int:
    if calls is None:
        return 0
    if not isinstance(calls, list):
        errors.add(path, "Must be a list of tool calls.")
        return 0
    tokens = 0
    for index, call in enumerate(calls):
        function = call.get("function") if isinstance(call, Mapping) else None
        if not (
            isinstance(function, Mapping)
            and isinstance(function.get("name"), str)
            and isinstance(function.get("arguments", ""), str)
        ):
            errors.add(f"{path}[{index}].function", "Give an object with a string name and string arguments.")
            continue
        tokens += count_tokens(function["name"]) + count_tokens(function.get("arguments", ""))
    return tokens


def read_messages(messages: Any, errors: FieldErrors) -> tuple[int, str]:
    """(prompt tokens, text of the last user message) of a chat request's messages."""
    if not isinstance(messages, list) or not messages:
        errors.add("messages", "Give a non-empty list of messages.")
        return 0, ""
    tokens = 0
    last_user = ""
    for index, message in enumerate(messages):
        path = f"messages[{index}]"
        if not isinstance(message, Mapping):
            errors.add(path, "Each message must be an object.")
            continue
        role = message.get("role")
        if role not in ROLES:
            errors.add(f"{path}.role", f"Use one of {', '.join(ROLES)}.")
            continue
        text = _content_text(message.get("content"), f"{path}.content", role, errors)
        name = message.get("name")
        if name is not None and not isinstance(name, str):
            errors.add(f"{path}.name", "Must be a string.")
            name = None
        if role == "function" and not name:
            errors.add(f"{path}.name", "A function message needs the function's name.")
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            errors.add(f"{path}.tool_call_id", "A tool message needs the id of the tool call it answers.")
        calls = _tool_call_tokens(message.get("tool_calls"), f"{path}.tool_calls", errors) if role == "assistant" else 0
        tokens += MESSAGE_OVERHEAD_TOKENS + count_tokens(text) + count_tokens(name or "") + calls
        if role == "user":
            last_user = text
    return tokens, last_user


def count_chat_prompt_tokens(messages: Any) -> int:
    """The prompt tokens a chat request's messages cost: for each message, the tokens of its text content, name
    and tool calls, plus `MESSAGE_OVERHEAD_TOKENS`. Raises ValidationError for malformed messages."""
    errors = FieldErrors()
    tokens, _ = read_messages(messages, errors)
    errors.raise_any()
    return tokens
