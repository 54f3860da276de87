"""The OpenAPI description of the proxy's `/v1/` endpoints (plain async views outside DRF), merged into the project's
document by a drf-spectacular postprocessing hook."""

from __future__ import annotations

from typing import Any

from apps.publishing.models import Category

TAG = "OpenAI-compatible proxy"
TAG_DESCRIPTION = (
    "OpenAI's API, metered: point any OpenAI SDK at `<this server>/v1` with an API key holding the `consume` scope. "
    "Model ids are `<publisher>/<service>` (the latest active version) or `<publisher>/<service>@<version>` (a "
    "pinned version, also while deprecated). Answers are OpenAI's, with `usage.cost` (USD) added; errors are "
    "OpenAI's error shape, so SDKs raise their usual exceptions."
)
SECURITY: list[dict[str, list[str]]] = [{"apiKey": []}]
AUTH = "Authorization: `Bearer mk_…`, a key with the `consume` scope (`admin` implies it)."
EXAMPLE_MODEL = "demo-provider/echo"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _header(description: str, schema_type: str = "string") -> dict[str, Any]:
    return {"description": description, "schema": {"type": schema_type}}


HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": _header("The request's id: in the usage record, the logs and the upstream call."),
    "X-RateLimit-Limit-Requests": _header("The key's requests per minute (keys with an rpm limit).", "integer"),
    "X-RateLimit-Remaining-Requests": _header("Requests left in the current minute.", "integer"),
    "X-RateLimit-Reset-Requests": _header("When the request window resets, e.g. `60s`."),
    "X-RateLimit-Limit-Tokens": _header("The key's tokens per minute (keys with a tpm limit).", "integer"),
    "X-RateLimit-Remaining-Tokens": _header(
        "Tokens left this minute. A call counts its prompt and its whole `max_tokens` (or the default) as reserved "
        "until it settles, so this drops by the reservation, then recovers what the call did not use.",
        "integer",
    ),
    "X-RateLimit-Reset-Tokens": _header("When the token window frees up, e.g. `0.532s`."),
    "X-Marketplace-Cost": _header(
        "What the call cost in USD, as a decimal string (the same as `usage.cost`). Not on streamed answers: their "
        "cost is in the final usage chunk (`stream_options.include_usage`) and in the usage API."
    ),
    "Retry-After": _header("Seconds to wait before retrying.", "integer"),
}
LIMIT_HEADERS = [name for name in HEADERS if name.startswith("X-RateLimit-")]

ERRORS = {
    "400": "A malformed request (`param` names the field); the upstream is not called. An upstream's own refusal "
    "(4xx) is passed on with its status and code `upstream_rejected`.",
    "401": "No API key, or a malformed, unknown, expired or revoked one.",
    "402": "A budget of the key or a spend, request or token quota of its tenant is exhausted (`insufficient_quota`).",
    "403": "The key lacks the `consume` scope or may not use this model, the tenant has no access to it, or the "
    "Policy Engine or Shield refused the prompt (`policy_violation`).",
    "404": "No such model, or none of its versions can be served. Tenants that may use the model are told why "
    "(failed validation, pending approval, suspended, deprecated…); others cannot tell it from an unknown one.",
    "413": "The body is larger than `MARKETPLACE_CONSUMPTION['MAX_BODY_BYTES']`.",
    "429": "A rate limit: the key's requests or tokens per minute, its parallel requests, a throttling quota, or the "
    "upstream's own 429. `Retry-After` says when to retry.",
    "502": "The upstream failed: a 5xx, unreachable, or an answer that is not JSON.",
    "503": "The version's circuit breaker is open, or admission is briefly unavailable. `Retry-After` says when.",
    "504": "The upstream did not answer within the service's SLA timeout.",
}


def _errors(*statuses: str) -> dict[str, Any]:
    responses = {}
    for status in statuses:
        headers = {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}}
        if status in ("429", "503"):
            headers["Retry-After"] = {"$ref": "#/components/headers/Retry-After"}
        responses[status] = {
            "description": ERRORS[status],
            "headers": headers,
            "content": {"application/json": {"schema": _ref("OpenAIError")}},
        }
    return responses


def _answer_headers(*, cost: bool = True) -> dict[str, Any]:
    names = ["X-Request-ID", *LIMIT_HEADERS, *(["X-Marketplace-Cost"] if cost else [])]
    return {name: {"$ref": f"#/components/headers/{name}"} for name in names}


CALL_ERRORS = ("400", "401", "402", "403", "404", "413", "429", "502", "503", "504")

_MODEL_ID = {
    "type": "string",
    "description": "`<publisher>/<service>` or `<publisher>/<service>@<version>`; `GET /v1/models` lists them.",
    "example": EXAMPLE_MODEL,
}
_SAMPLING = {
    "max_tokens": {
        "type": "integer",
        "minimum": 1,
        "description": "At most the model's context length. Reserved against rate limits and budgets until the "
        "call settles; when absent, the proxy sets and reserves a default.",
    },
    "temperature": {"type": "number", "minimum": 0, "maximum": 2},
    "top_p": {"type": "number", "minimum": 0, "maximum": 1},
    "n": {
        "type": "integer",
        "minimum": 1,
        "default": 1,
        "description": "Choices to generate, at most `MARKETPLACE_CONSUMPTION['MAX_N']`; all are reserved and billed.",
    },
    "stop": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    "stream": {
        "type": "boolean",
        "default": False,
        "description": "Answer as server-sent events (`text/event-stream`), ended by `data: [DONE]`.",
    },
    "stream_options": {
        "type": "object",
        "properties": {
            "include_usage": {
                "type": "boolean",
                "description": "Send a last chunk with empty `choices` and the `usage` (with `cost`).",
            }
        },
    },
    "user": {"type": "string"},
}
_PROMPT = {
    "oneOf": [
        {"type": "string"},
        {"type": "array", "items": {"type": "string"}, "minItems": 1},
        {"type": "array", "items": {"type": "integer"}, "minItems": 1},
        {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}, "minItems": 1},
    ]
}
_OTHER_FIELDS = "Other OpenAI parameters (tools, response_format, seed…) are passed to the upstream unchanged."
_ANSWER = {
    "id": {"type": "string"},
    "created": {"type": "integer", "description": "Unix seconds."},
    "model": {"type": "string"},
    "system_fingerprint": {"type": "string", "nullable": True},
}
_FINISH = {"type": "string", "nullable": True, "example": "stop"}
_SSE = (
    "With `stream: true`: server-sent events, each `data: <chunk JSON>` and a blank line, ended by "
    "`data: [DONE]`. Streams are billed for what was delivered, also when the client leaves early."
)

SCHEMAS: dict[str, Any] = {
    "OpenAIError": {
        "type": "object",
        "description": "OpenAI's error shape, parsed by the official SDKs.",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type", "code"],
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string", "example": "invalid_request_error"},
                    "code": {"type": "string", "example": "validation_error"},
                    "param": {"type": "string", "nullable": True, "description": "The field at fault, if any."},
                },
            }
        },
    },
    "ProxyUsage": {
        "type": "object",
        "description": "The tokens billed (the provider's report, bounded by what admission reserved) and their "
        "cost; other fields of the upstream's usage are passed on.",
        "required": ["prompt_tokens", "total_tokens", "cost"],
        "properties": {
            "prompt_tokens": {"type": "integer"},
            "completion_tokens": {"type": "integer"},
            "total_tokens": {"type": "integer"},
            "cost": {"type": "number", "description": "USD, as billed to the usage ledger."},
        },
        "additionalProperties": True,
    },
    "ModelPricing": {
        "type": "object",
        "description": "OpenRouter's `pricing` shape: USD per token and per request, as decimal strings, as the "
        "proxy bills a call (free and subscription models: all `0`; per-request models: `request` only). "
        "`input_cache_read` is the publisher's listed price per cached prompt token, when it lists one (the proxy "
        "bills every prompt token at `prompt`).",
        "required": ["prompt", "completion", "request"],
        "properties": {
            name: {"type": "string", "pattern": r"^\d+(\.\d+)?$", "example": example}
            for name, example in (
                ("prompt", "0.0000005"),
                ("completion", "0.0000015"),
                ("request", "0"),
                ("input_cache_read", "0.00000025"),
            )
        },
    },
    "ProxyModel": {
        "type": "object",
        "description": "OpenAI's model object, with OpenRouter's extra fields.",
        "required": ["id", "object", "created", "owned_by", "category", "context_length", "pricing"],
        "properties": {
            "id": {"type": "string", "example": EXAMPLE_MODEL},
            "object": {"type": "string", "enum": ["model"]},
            "created": {"type": "integer", "description": "When the version was published (Unix seconds)."},
            "owned_by": {"type": "string", "description": "The publisher tenant's slug.", "example": "demo-provider"},
            "category": {"type": "string", "enum": [category.value for category in Category]},
            "context_length": {"type": "integer", "description": "Prompt plus completion tokens, at most."},
            "pricing": _ref("ModelPricing"),
        },
    },
    "ProxyModelList": {
        "type": "object",
        "required": ["object", "data"],
        "properties": {
            "object": {"type": "string", "enum": ["list"]},
            "data": {"type": "array", "items": _ref("ProxyModel")},
        },
    },
    "ChatMessage": {
        "type": "object",
        "required": ["role"],
        "properties": {
            "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
            "content": {
                "nullable": True,
                "oneOf": [
                    {"type": "string"},
                    {"type": "array", "items": {"type": "object", "additionalProperties": True}},
                ],
            },
            "name": {"type": "string"},
        },
        "additionalProperties": True,
    },
    "ChatCompletionRequest": {
        "type": "object",
        "description": _OTHER_FIELDS,
        "required": ["model", "messages"],
        "properties": {
            "model": _MODEL_ID,
            "messages": {"type": "array", "items": _ref("ChatMessage"), "minItems": 1},
            "max_completion_tokens": {"type": "integer", "minimum": 1, "description": "Preferred to `max_tokens`."},
            **_SAMPLING,
        },
        "additionalProperties": True,
    },
    "ChatCompletion": {
        "type": "object",
        "required": ["id", "object", "created", "model", "choices", "usage"],
        "properties": {
            "object": {"type": "string", "enum": ["chat.completion"]},
            **_ANSWER,
            "choices": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "index": {"type": "integer"},
                        "message": _ref("ChatMessage"),
                        "finish_reason": _FINISH,
                        "logprobs": {"type": "object", "nullable": True},
                    },
                },
            },
            "usage": _ref("ProxyUsage"),
        },
    },
    "CompletionRequest": {
        "type": "object",
        "description": _OTHER_FIELDS,
        "required": ["model", "prompt"],
        "properties": {"model": _MODEL_ID, "prompt": _PROMPT, **_SAMPLING},
        "additionalProperties": True,
    },
    "Completion": {
        "type": "object",
        "required": ["id", "object", "created", "model", "choices", "usage"],
        "properties": {
            "object": {"type": "string", "enum": ["text_completion"]},
            **_ANSWER,
            "choices": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "index": {"type": "integer"},
                        "text": {"type": "string"},
                        "finish_reason": _FINISH,
                        "logprobs": {"type": "object", "nullable": True},
                    },
                },
            },
            "usage": _ref("ProxyUsage"),
        },
    },
    "EmbeddingRequest": {
        "type": "object",
        "description": _OTHER_FIELDS,
        "required": ["model", "input"],
        "properties": {
            "model": _MODEL_ID,
            "input": _PROMPT,
            "encoding_format": {"type": "string", "enum": ["float", "base64"], "default": "float"},
            "dimensions": {"type": "integer", "minimum": 1},
            "user": {"type": "string"},
        },
        "additionalProperties": True,
    },
    "EmbeddingList": {
        "type": "object",
        "required": ["object", "data", "model", "usage"],
        "properties": {
            "object": {"type": "string", "enum": ["list"]},
            "data": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "object": {"type": "string", "enum": ["embedding"]},
                        "index": {"type": "integer"},
                        "embedding": {
                            "oneOf": [
                                {"type": "array", "items": {"type": "number"}},
                                {"type": "string", "description": "Base64 of little-endian float32s."},
                            ]
                        },
                    },
                },
            },
            "model": {"type": "string"},
            "usage": _ref("ProxyUsage"),
        },
    },
}

_CHAT_EXAMPLE = {"model": EXAMPLE_MODEL, "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 16}
_STREAM_EXAMPLE = (
    'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1767225600,"model":"demo-provider/echo",'
    '"choices":[{"index":0,"delta":{"content":"Echo"},"finish_reason":null}]}\n\n'
    'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1767225600,"model":"demo-provider/echo",'
    '"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":4,"total_tokens":9,"cost":0.0000015}}\n\n'
    "data: [DONE]\n\n"
)


def _call(
    operation_id: str, summary: str, description: str, request: str, answer: str, example: dict[str, Any]
) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": _ref(answer)}}
    if request != "EmbeddingRequest":
        content["text/event-stream"] = {
            "schema": {"type": "string", "description": _SSE},
            "example": _STREAM_EXAMPLE,
        }
    return {
        "post": {
            "operationId": operation_id,
            "summary": summary,
            "description": f"{description}\n\n{AUTH}",
            "tags": [TAG],
            "security": SECURITY,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref(request), "example": example}},
            },
            "responses": {
                "200": {
                    "description": "The upstream's answer with the billed `usage` and its `cost`. " + _SSE,
                    "headers": _answer_headers(),
                    "content": content,
                },
                **_errors(*CALL_ERRORS),
            },
        }
    }


PATHS: dict[str, Any] = {
    "/v1/models": {
        "get": {
            "operationId": "openai_models_list",
            "summary": "The models this key may use",
            "description": "The latest active version of every service the key's tenant may use (its own, granted "
            "or open to it), narrowed to the key's allowed models, in OpenAI's list shape. Each model also carries "
            f"OpenRouter's `category`, `context_length` and `pricing`.\n\n{AUTH}",
            "tags": [TAG],
            "security": SECURITY,
            "responses": {
                "200": {
                    "description": "OpenAI's model list.",
                    "headers": {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}},
                    "content": {"application/json": {"schema": _ref("ProxyModelList")}},
                },
                **_errors("401", "403"),
            },
        }
    },
    "/v1/chat/completions": _call(
        "openai_chat_completions_create",
        "Chat completion",
        "A chat completion from the model, streamed or not.",
        "ChatCompletionRequest",
        "ChatCompletion",
        _CHAT_EXAMPLE,
    ),
    "/v1/completions": _call(
        "openai_completions_create",
        "Text completion",
        "A (legacy) text completion from the model, streamed or not.",
        "CompletionRequest",
        "Completion",
        {"model": EXAMPLE_MODEL, "prompt": "Say this is a test", "max_tokens": 8},
    ),
    "/v1/embeddings": _call(
        "openai_embeddings_create",
        "Embeddings",
        "Embeddings of one or more inputs (never streamed).",
        "EmbeddingRequest",
        "EmbeddingList",
        {"model": EXAMPLE_MODEL, "input": ["The food was delicious", "The waiter was friendly"]},
    ),
}


def add_proxy_paths(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook (`SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]`): the `/v1/` paths,
    their schemas and headers, and their tag."""
    result.setdefault("paths", {}).update(PATHS)
    components = result.setdefault("components", {})
    components.setdefault("schemas", {}).update(SCHEMAS)
    components.setdefault("headers", {}).update(HEADERS)
    components.setdefault("securitySchemes", {}).setdefault(
        "apiKey", {"type": "http", "scheme": "bearer", "bearerFormat": "mk_<43 base62 characters>"}
    )
    result.setdefault("tags", []).append({"name": TAG, "description": TAG_DESCRIPTION})
    return result
