"""The built-in echo provider: determinism, exact token accounting, truncation, streaming, embeddings, validation."""

from __future__ import annotations

import base64
import json
import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.consumption import echo, tokenizer
from llm_infra_django.errors import ValidationError, openai_error_body

MODEL = "demo-provider/echo"
texts = st.text(max_size=300)
# Text parts: the tokenizer's both kinds of token, whitespace of several kinds, and unicode letters.
wordy = st.text(alphabet=st.sampled_from(list("ab Zé9_,.!?;:-'\"()\t\n 日本")), max_size=200)


def chat(*messages: dict, **extra) -> dict:
    return {"model": MODEL, "messages": list(messages), **extra}


def user(content) -> dict:
    return {"role": "user", "content": content}


def stable(response: dict) -> dict:
    """The response without its random id and its timestamp."""
    return {k: v for k, v in response.items() if k not in ("id", "created")}


def field_errors(excinfo: pytest.ExceptionInfo[ValidationError]) -> dict:
    return excinfo.value.details["fields"]


# --- The tokenizer ------------------------------------------------------------------------------------------


def test_the_tokenizer_counts_words_and_punctuation() -> None:
    assert tokenizer.tokenize("Hello, world!") == ["Hello", ",", "world", "!"]
    assert tokenizer.count_tokens("Hello, world!") == 4
    assert tokenizer.count_tokens("") == 0
    assert tokenizer.count_tokens("  \n\t ") == 0
    assert tokenizer.count_tokens("snake_case x2 3.14") == 5  # "snake_case", "x2", "3", ".", "14"
    assert tokenizer.count_tokens("naïve 日本語") == 2


@given(wordy)
def test_pieces_concatenate_back_and_hold_one_token_each(text: str) -> None:
    pieces = tokenizer.split_pieces(text)
    assert "".join(pieces) == text
    if tokenizer.count_tokens(text):
        assert [tokenizer.count_tokens(piece) for piece in pieces] == [1] * tokenizer.count_tokens(text)


# --- Chat completions ---------------------------------------------------------------------------------------


def test_chat_echoes_the_last_user_message_in_openai_shape() -> None:
    body = chat(
        {"role": "system", "content": "Be brief."},
        user("first"),
        {"role": "assistant", "content": "Echo: first"},
        user("Hello, world!"),
    )
    response = echo.chat_completion(body, model=MODEL)
    assert response["id"].startswith("chatcmpl-")
    assert response["object"] == "chat.completion"
    assert isinstance(response["created"], int)
    assert response["model"] == MODEL
    assert response["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Echo: Hello, world!", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    # 4 messages × 3 overhead + "Be brief." 3 + "first" 1 + "Echo: first" 3 + "Hello, world!" 4
    assert response["usage"] == {"prompt_tokens": 23, "completion_tokens": 6, "total_tokens": 29}


def test_chat_is_deterministic_apart_from_id_and_timestamp() -> None:
    body = chat(user("same question"), temperature=1.7, top_p=0.3, seed=7)
    first, second = echo.chat_completion(body, model=MODEL), echo.chat_completion(body, model=MODEL)
    assert first["id"] != second["id"]
    assert stable(first) == stable(second)
    pinned = echo.chat_completion(body, model=MODEL, response_id="chatcmpl-abc", created=1700000000)
    assert pinned["id"] == "chatcmpl-abc" and pinned["created"] == 1700000000


@settings(max_examples=150, deadline=None)
@given(system=texts, history=st.lists(texts, max_size=4), last=texts, name=st.text(max_size=20))
def test_usage_is_exactly_the_tokenizer_count(system: str, history: list[str], last: str, name: str) -> None:
    messages = [{"role": "system", "content": system}]
    messages += [{"role": "assistant" if i % 2 else "user", "content": text} for i, text in enumerate(history)]
    messages.append({"role": "user", "content": last, "name": name})
    response = echo.chat_completion(chat(*messages), model=MODEL)
    expected_prompt = sum(tokenizer.MESSAGE_OVERHEAD_TOKENS + tokenizer.count_tokens(m["content"]) for m in messages)
    expected_prompt += tokenizer.count_tokens(name)
    content = response["choices"][0]["message"]["content"]
    assert content == "Echo: " + last
    assert response["usage"]["prompt_tokens"] == expected_prompt == tokenizer.count_chat_prompt_tokens(messages)
    assert response["usage"]["completion_tokens"] == tokenizer.count_tokens(content) == 2 + tokenizer.count_tokens(last)
    assert response["usage"]["total_tokens"] == expected_prompt + response["usage"]["completion_tokens"]


@settings(max_examples=150, deadline=None)
@given(text=wordy, max_tokens=st.integers(min_value=1, max_value=60))
def test_max_tokens_truncates_at_a_token_boundary(text: str, max_tokens: int) -> None:
    full = "Echo: " + text
    response = echo.chat_completion(chat(user(text), max_tokens=max_tokens), model=MODEL)
    choice = response["choices"][0]
    content = choice["message"]["content"]
    assert full.startswith(content)
    if tokenizer.count_tokens(full) > max_tokens:
        assert choice["finish_reason"] == "length"
        assert tokenizer.count_tokens(content) == max_tokens == response["usage"]["completion_tokens"]
        assert tokenizer.tokenize(content) == tokenizer.tokenize(full)[:max_tokens]
    else:
        assert choice["finish_reason"] == "stop"
        assert content == full
        assert response["usage"]["completion_tokens"] == tokenizer.count_tokens(full)


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    response = echo.chat_completion(
        chat(user("one two three four"), max_tokens=50, max_completion_tokens=3), model=MODEL
    )
    assert response["choices"][0]["message"]["content"] == "Echo: one"
    assert response["choices"][0]["finish_reason"] == "length"


def test_stop_sequences_cut_the_reply() -> None:
    response = echo.chat_completion(chat(user("alpha beta. gamma"), stop=[".", "zzz"]), model=MODEL)
    assert response["choices"][0]["message"]["content"] == "Echo: alpha beta"
    assert response["choices"][0]["finish_reason"] == "stop"
    assert response["usage"]["completion_tokens"] == 4


def test_n_choices_are_identical_and_counted() -> None:
    response = echo.chat_completion(chat(user("hi"), n=3), model=MODEL)
    assert [c["index"] for c in response["choices"]] == [0, 1, 2]
    assert {c["message"]["content"] for c in response["choices"]} == {"Echo: hi"}
    assert response["usage"]["completion_tokens"] == 9


def test_text_content_parts_and_tool_calls_are_read() -> None:
    messages = [
        user([{"type": "text", "text": "look at"}, {"type": "text", "text": "this"}]),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"q":1}'}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
    ]
    response = echo.chat_completion(chat(*messages), model=MODEL)
    assert response["choices"][0]["message"]["content"] == "Echo: look at\nthis"
    # 3 × 3 overhead + "look at this" 3 + "lookup" 1 + {"q":1} 7 (braces, quotes, colon each one) + "42" 1
    assert response["usage"]["prompt_tokens"] == 21


def test_a_conversation_without_user_message_echoes_nothing() -> None:
    response = echo.chat_completion(chat({"role": "system", "content": "alone"}), model=MODEL)
    assert response["choices"][0]["message"]["content"] == "Echo: "
    assert response["usage"]["completion_tokens"] == 2


def test_context_length_is_enforced_and_caps_the_reply() -> None:
    body = chat(user("a b c d e f"))  # prompt 3 + 6 = 9 tokens
    with pytest.raises(ValidationError) as excinfo:
        echo.chat_completion({**body, "max_tokens": 5}, model=MODEL, context_length=12)
    assert excinfo.value.code == "context_length_exceeded"
    assert "messages" in field_errors(excinfo)
    capped = echo.chat_completion(body, model=MODEL, context_length=12)
    assert capped["usage"] == {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
    assert capped["choices"][0]["finish_reason"] == "length"


# --- Streaming ----------------------------------------------------------------------------------------------


def reassemble(chunks: list[dict]) -> dict[int, tuple[str, str | None]]:
    """Per choice index: the concatenated delta contents and the finish reason."""
    out: dict[int, tuple[str, str | None]] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            text, finish = out.get(choice["index"], ("", None))
            out[choice["index"]] = (text + choice["delta"].get("content", ""), choice["finish_reason"] or finish)
    return out


@settings(max_examples=100, deadline=None)
@given(text=wordy, max_tokens=st.none() | st.integers(min_value=1, max_value=40))
def test_stream_reassembles_to_the_non_stream_reply_with_matching_usage(text: str, max_tokens: int | None) -> None:
    body = chat({"role": "system", "content": "sys"}, user(text), max_tokens=max_tokens)
    whole = echo.chat_completion(body, model=MODEL)
    chunks = list(
        echo.stream_chat_completion({**body, "stream": True, "stream_options": {"include_usage": True}}, model=MODEL)
    )
    assert reassemble(chunks) == {0: (whole["choices"][0]["message"]["content"], whole["choices"][0]["finish_reason"])}
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("chatcmpl-")
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    token_chunks = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert len(token_chunks) == whole["usage"]["completion_tokens"]  # one chunk per token
    assert all(tokenizer.count_tokens(c["choices"][0]["delta"]["content"]) == 1 for c in token_chunks)
    *body_chunks, usage_chunk = chunks
    assert usage_chunk["choices"] == [] and usage_chunk["usage"] == whole["usage"]
    assert all(c["usage"] is None for c in body_chunks)
    assert body_chunks[-1]["choices"][0]["finish_reason"] == whole["choices"][0]["finish_reason"]
    assert sum(1 for c in body_chunks if c["choices"][0]["finish_reason"]) == 1


def test_stream_without_include_usage_has_no_usage_field() -> None:
    chunks = list(echo.stream_chat_completion(chat(user("hi"), stream=True), model=MODEL))
    assert all("usage" not in c for c in chunks)
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": ""},
        {"content": "Echo"},
        {"content": ":"},
        {"content": " hi"},
        {},
    ]


def test_stream_with_several_choices() -> None:
    body = chat(user("x y"), n=2, stream=True, stream_options={"include_usage": True})
    chunks = list(echo.stream_chat_completion(body, model=MODEL))
    assert reassemble(chunks) == {0: ("Echo: x y", "stop"), 1: ("Echo: x y", "stop")}
    assert chunks[-1]["usage"]["completion_tokens"] == 8


def test_a_bad_stream_body_raises_before_any_chunk() -> None:
    with pytest.raises(ValidationError):
        echo.stream_chat_completion(chat(user("hi"), max_tokens=0), model=MODEL)


async def test_async_stream_yields_the_same_chunks() -> None:
    body = chat(user("async text"), stream=True, stream_options={"include_usage": True})
    chunks = [c async for c in echo.astream_chat_completion(body, model=MODEL, response_id="x", created=1)]
    assert chunks == list(echo.stream_chat_completion(body, model=MODEL, response_id="x", created=1))
    with pytest.raises(ValidationError):
        echo.astream_chat_completion({"messages": []}, model=MODEL)


def test_sse_events_are_openai_data_lines() -> None:
    chunk = next(echo.stream_chat_completion(chat(user("é"), stream=True), model=MODEL))
    event = echo.sse_event(chunk)
    assert event.startswith(b"data: ") and event.endswith(b"\n\n")
    assert json.loads(event[len(b"data: ") :]) == chunk
    assert echo.SSE_DONE == b"data: [DONE]\n\n"


# --- Legacy completions -------------------------------------------------------------------------------------


def test_completion_defaults_to_16_tokens_like_openai() -> None:
    prompt = " ".join(f"w{i}" for i in range(30))
    response = echo.completion({"model": MODEL, "prompt": prompt}, model=MODEL)
    assert response["object"] == "text_completion" and response["id"].startswith("cmpl-")
    choice = response["choices"][0]
    assert choice["finish_reason"] == "length"
    assert tokenizer.count_tokens(choice["text"]) == 16
    assert response["usage"] == {"prompt_tokens": 30, "completion_tokens": 16, "total_tokens": 46}


def test_completion_with_several_prompts_and_n() -> None:
    response = echo.completion({"prompt": ["a", "b c"], "n": 2, "max_tokens": 100}, model=MODEL)
    assert [(c["index"], c["text"]) for c in response["choices"]] == [
        (0, "Echo: a"),
        (1, "Echo: a"),
        (2, "Echo: b c"),
        (3, "Echo: b c"),
    ]
    assert response["usage"] == {"prompt_tokens": 3, "completion_tokens": 14, "total_tokens": 17}


def test_completion_stream_reassembles() -> None:
    body = {"prompt": "stream me, please", "max_tokens": 4, "stream": True, "stream_options": {"include_usage": True}}
    whole = echo.completion(body, model=MODEL)
    chunks = list(echo.stream_completion(body, model=MODEL))
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == whole["choices"][0]["text"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"] == whole["usage"] and chunks[-1]["choices"] == []


# --- Embeddings ---------------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=200))
def test_embeddings_are_deterministic_unit_vectors(text: str) -> None:
    first = echo.embeddings({"input": text}, model=MODEL)
    second = echo.embeddings({"input": [text]}, model=MODEL)
    vector = first["data"][0]["embedding"]
    assert vector == second["data"][0]["embedding"]
    assert len(vector) == echo.EMBEDDING_DIMENSIONS
    assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, abs_tol=1e-5)
    assert first["usage"] == {
        "prompt_tokens": tokenizer.count_tokens(text),
        "total_tokens": tokenizer.count_tokens(text),
    }


def test_embeddings_differ_between_inputs_and_follow_dimensions() -> None:
    response = echo.embeddings({"input": ["cat", "dog", "cat"], "dimensions": 300}, model=MODEL)
    assert response["object"] == "list" and response["model"] == MODEL
    vectors = [d["embedding"] for d in response["data"]]
    assert [d["index"] for d in response["data"]] == [0, 1, 2]
    assert vectors[0] == vectors[2] != vectors[1]
    assert all(len(v) == 300 for v in vectors)
    assert all(math.isclose(sum(x * x for x in v), 1.0, abs_tol=1e-5) for v in vectors)


def test_base64_embeddings_carry_the_same_float32_numbers() -> None:
    plain = echo.embeddings({"input": "hello"}, model=MODEL)["data"][0]["embedding"]
    encoded = echo.embeddings({"input": "hello", "encoding_format": "base64"}, model=MODEL)["data"][0]["embedding"]
    raw = base64.b64decode(encoded)
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == plain


def test_token_id_arrays_are_embedded_and_counted_by_length() -> None:
    response = echo.embeddings({"input": [[1, 2, 3], [4]]}, model=MODEL)
    assert response["usage"]["prompt_tokens"] == 4
    single = echo.embeddings({"input": [1, 2, 3]}, model=MODEL)
    assert single["data"][0]["embedding"] == response["data"][0]["embedding"]
    assert echo.embeddings({"input": "1,2,3"}, model=MODEL)["data"][0]["embedding"] != single["data"][0]["embedding"]


# --- Bad input ----------------------------------------------------------------------------------------------

BAD_CHAT = [
    ({"model": MODEL}, "messages"),
    (chat(), "messages"),
    ({"messages": "hello"}, "messages"),
    ({"messages": ["hello"]}, "messages[0]"),
    (chat({"role": "robot", "content": "x"}), "messages[0].role"),
    (chat({"content": "x"}), "messages[0].role"),
    (chat(user(None)), "messages[0].content"),
    (chat(user(42)), "messages[0].content"),
    (chat(user([])), "messages[0].content"),
    (chat(user([{"type": "image_url", "image_url": {"url": "http://x/y.png"}}])), "messages[0].content[0].type"),
    (chat(user([{"type": "text", "text": 3}])), "messages[0].content[0].text"),
    (chat({"role": "tool", "content": "42"}), "messages[0].tool_call_id"),
    (chat({"role": "function", "content": "42"}), "messages[0].name"),
    (chat(user("x"), {"role": "user", "content": "y", "name": 5}), "messages[1].name"),
    (
        chat({"role": "assistant", "content": None, "tool_calls": [{"function": 1}]}),
        "messages[0].tool_calls[0].function",
    ),
    (chat(user("x"), max_tokens=0), "max_tokens"),
    (chat(user("x"), max_tokens=-3), "max_tokens"),
    (chat(user("x"), max_tokens=1.5), "max_tokens"),
    (chat(user("x"), max_tokens="10"), "max_tokens"),
    (chat(user("x"), max_tokens=True), "max_tokens"),
    (chat(user("x"), max_completion_tokens=0), "max_completion_tokens"),
    (chat(user("x"), temperature=3), "temperature"),
    (chat(user("x"), temperature="hot"), "temperature"),
    (chat(user("x"), top_p=1.5), "top_p"),
    (chat(user("x"), presence_penalty=-2.5), "presence_penalty"),
    (chat(user("x"), n=0), "n"),
    (chat(user("x"), n=129), "n"),
    (chat(user("x"), stream="yes"), "stream"),
    (chat(user("x"), stream_options={"include_usage": True}), "stream_options"),
    (chat(user("x"), stream=True, stream_options=[]), "stream_options"),
    (chat(user("x"), stream=True, stream_options={"include_usage": "yes"}), "include_usage"),
    (chat(user("x"), stop=["a", "b", "c", "d", "e"]), "stop"),
    (chat(user("x"), stop=[1]), "stop"),
    (chat(user("x"), stop=""), "stop"),
    (chat(user("x"), response_format={"type": "json_object"}), "response_format"),
    (chat(user("x"), response_format="json"), "response_format"),
    (chat(user("x"), logprobs=True), "logprobs"),
    (chat(user("x"), user=7), "user"),
]


@pytest.mark.parametrize(("body", "field"), BAD_CHAT)
def test_bad_chat_bodies_name_the_field(body: dict, field: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        echo.chat_completion(body, model=MODEL)
    assert field in field_errors(excinfo)
    assert excinfo.value.status_code == 400


def test_every_problem_is_reported_at_once_and_maps_to_openai_param() -> None:
    with pytest.raises(ValidationError) as excinfo:
        echo.chat_completion({"messages": [{"role": "x", "content": "y"}], "max_tokens": 0, "n": 0}, model=MODEL)
    assert set(field_errors(excinfo)) == {"messages[0].role", "max_tokens", "n"}
    assert openai_error_body(excinfo.value)["error"]["param"] == "messages[0].role"


@pytest.mark.parametrize("body", [None, [], "text", 3])
def test_a_body_that_is_not_an_object(body) -> None:
    for function in (echo.chat_completion, echo.completion, echo.embeddings):
        with pytest.raises(ValidationError) as excinfo:
            function(body, model=MODEL)
        assert field_errors(excinfo) == {"body": ["The request body must be a JSON object."]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "prompt"),
        ({"prompt": []}, "prompt"),
        ({"prompt": 3}, "prompt"),
        ({"prompt": [1, 2, 3]}, "prompt"),
        ({"prompt": "x", "max_tokens": 0}, "max_tokens"),
        ({"prompt": "x", "echo": True}, "echo"),
        ({"prompt": "x", "logprobs": 2}, "logprobs"),
        ({"prompt": "x", "suffix": "end"}, "suffix"),
    ],
)
def test_bad_completion_bodies_name_the_field(body: dict, field: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        echo.completion(body, model=MODEL)
    assert field in field_errors(excinfo)


def test_completion_context_length_names_the_prompt() -> None:
    with pytest.raises(ValidationError) as excinfo:
        echo.completion({"prompt": ["ok", "a b c d e f g h"], "max_tokens": 4}, model=MODEL, context_length=10)
    assert excinfo.value.code == "context_length_exceeded"
    assert "prompt[1]" in field_errors(excinfo)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "input"),
        ({"input": ""}, "input"),
        ({"input": []}, "input"),
        ({"input": ["ok", ""]}, "input[1]"),
        ({"input": ["ok", [1]]}, "input"),
        ({"input": [[1], []]}, "input[1]"),
        ({"input": [[1, -2]]}, "input[0]"),
        ({"input": [1.5]}, "input"),
        ({"input": ["x"] * (echo.MAX_EMBEDDING_INPUTS + 1)}, "input"),
        ({"input": "x", "dimensions": 0}, "dimensions"),
        ({"input": "x", "dimensions": echo.MAX_EMBEDDING_DIMENSIONS + 1}, "dimensions"),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
    ],
)
def test_bad_embedding_bodies_name_the_field(body: dict, field: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        echo.embeddings(body, model=MODEL)
    assert field in field_errors(excinfo)


def test_unused_openai_fields_are_accepted() -> None:
    body = chat(user("x"), tools=[], tool_choice="auto", metadata={"a": "b"}, parallel_tool_calls=True, model="any")
    assert echo.chat_completion(body, model=MODEL)["choices"][0]["message"]["content"] == "Echo: x"


# --- The official SDK reads what echo answers ---------------------------------------------------------------


def sdk_client():
    """An `openai.OpenAI` whose HTTP transport answers in-process with the echo functions (SSE when streaming)."""
    import httpx
    import openai

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        path = request.url.path.removeprefix("/v1")
        try:
            if path == "/chat/completions" and body.get("stream"):
                chunks = echo.stream_chat_completion(body, model=body["model"])
                stream = b"".join(map(echo.sse_event, chunks)) + echo.SSE_DONE
                return httpx.Response(200, content=stream, headers={"Content-Type": "text/event-stream"})
            function = {"/chat/completions": echo.chat_completion, "/embeddings": echo.embeddings}[path]
            return httpx.Response(200, json=function(body, model=body["model"]))
        except ValidationError as exc:
            return httpx.Response(400, json=openai_error_body(exc))

    http = httpx.Client(transport=httpx.MockTransport(answer))
    return openai.OpenAI(base_url="http://echo.local/v1", api_key="unused", http_client=http, max_retries=0)


def test_the_openai_sdk_parses_chat_streams_embeddings_and_errors() -> None:
    import openai

    client = sdk_client()
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi SDK"}], max_tokens=3)
    assert reply.choices[0].message.content == "Echo: Hi"
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 3

    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Hi SDK"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: Hi SDK"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 9  # 3 + "Hi SDK" 2, then 4

    vectors = client.embeddings.create(model=MODEL, input=["a", "b"])  # the SDK asks for base64 by default
    assert vectors.data[0].embedding == echo.embedding_vector("a")
    assert len(vectors.data[1].embedding) == echo.EMBEDDING_DIMENSIONS

    with pytest.raises(openai.BadRequestError) as excinfo:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], max_tokens=0)
    assert excinfo.value.param == "max_tokens"


def test_max_completion_tokens_is_a_chat_field_only() -> None:
    response = echo.completion({"prompt": "a b c", "max_completion_tokens": 1}, model=MODEL)
    assert response["choices"][0]["text"] == "Echo: a b c"  # ignored: the legacy API has max_tokens only
