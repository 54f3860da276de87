"""Request and response examples of the publishing API (shown in the OpenAPI document)."""

from __future__ import annotations

from typing import Any

SERVICE_ID = "7b0c9a52-8f64-4a5e-9d0a-2f4f8f1f6c11"
VERSION_ID = "0c6f3f7e-51d2-4d3f-8a35-0b8b3f1d2e90"
RUN_ID = "f3a1e6b0-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
PUBLISHER = {"id": "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a", "slug": "acme", "name": "Acme AI"}

PUBLISH_REQUEST_EXAMPLE: dict[str, Any] = {
    "slug": "llama-chat",
    "version": "1.0.0",
    "name": "Llama Chat",
    "description": "Llama 3 8B instruct served by vLLM, for general chat.",
    "category": "chat",
    "tags": ["llama", "chat", "open-weights"],
    "capabilities": [{"name": "chat", "description": "Multi-turn chat", "parameters": {"max_tokens": 8192}}],
    "endpoint": {
        "url": "https://llm.acme.example/v1",
        "protocol": "openai",
        "model": "meta-llama/Meta-Llama-3-8B-Instruct",
        "auth": {"kind": "bearer", "secret": "upstream-token-never-returned"},
    },
    "pricing": {"model": "per_token", "input_per_mtok": "0.20", "output_per_mtok": "0.60", "currency": "USD"},
    "sla": {"availability": "99.9", "max_latency_ms": 2000, "timeout_ms": 30000, "support_level": "premium"},
    "compliance": {
        "level": "public",
        "certifications": ["SOC2"],
        "data_residency": ["FR", "DE"],
        "gdpr": True,
        "hipaa": False,
    },
    "context_length": 8192,
    "modalities": ["text"],
}

VERSION_REQUEST_EXAMPLE: dict[str, Any] = {
    key: value for key, value in PUBLISH_REQUEST_EXAMPLE.items() if key != "slug"
} | {"version": "1.1.0"}

_CONTENT: dict[str, Any] = {
    "name": "Llama Chat",
    "description": "Llama 3 8B instruct served by vLLM, for general chat.",
    "category": "chat",
    "tags": ["llama", "chat", "open-weights"],
    "capabilities": [{"name": "chat", "description": "Multi-turn chat", "parameters": {"max_tokens": 8192}}],
    "endpoint": {
        "url": "https://llm.acme.example/v1",
        "protocol": "openai",
        "model": "meta-llama/Meta-Llama-3-8B-Instruct",
        "auth": {"kind": "bearer"},
    },
    "pricing": {
        "model": "per_token",
        "input_per_mtok": "0.2",
        "output_per_mtok": "0.6",
        "cached_input_per_mtok": None,
        "per_request": None,
        "currency": "USD",
    },
    "sla": {"availability": "99.9", "max_latency_ms": 2000, "timeout_ms": 30000, "support_level": "premium"},
    "compliance": {
        "level": "public",
        "certifications": ["SOC2"],
        "data_residency": ["FR", "DE"],
        "gdpr": True,
        "hipaa": False,
    },
    "context_length": 8192,
    "modalities": ["text"],
}

PUBLISH_RESULT_EXAMPLE: dict[str, Any] = {
    "service": {
        "id": SERVICE_ID,
        "slug": "llama-chat",
        "model_id": "acme/llama-chat",
        "publisher": PUBLISHER,
        "created_at": "2025-05-01T09:00:00Z",
    },
    "version": {
        **_CONTENT,
        "id": VERSION_ID,
        "service_id": SERVICE_ID,
        "model_id": "acme/llama-chat@1.0.0",
        "version": "1.0.0",
        "status": "active",
        "openapi": None,
        "published_at": "2025-05-01T09:00:01Z",
        "deprecated_at": None,
        "retire_at": None,
        "suspension_reason": "",
        "review_notes": "",
        "created_at": "2025-05-01T09:00:00Z",
        "updated_at": "2025-05-01T09:00:01Z",
    },
    "validation_run": {
        "id": RUN_ID,
        "outcome": "passed",
        "result_status": "active",
        "started_at": "2025-05-01T09:00:00Z",
        "finished_at": "2025-05-01T09:00:01Z",
        "steps": [
            {"name": "schema", "position": 0, "outcome": "passed", "messages": [], "duration_ms": 0.4},
            {"name": "openapi", "position": 1, "outcome": "passed", "messages": [], "duration_ms": 0.1},
            {"name": "policy", "position": 2, "outcome": "passed", "messages": [], "duration_ms": 0.2},
            {
                "name": "probe",
                "position": 3,
                "outcome": "passed",
                "messages": [
                    {
                        "code": "PROBE_LATENCY",
                        "field": "endpoint.url",
                        "message": "Answered in 42.0 ms.",
                        "severity": "info",
                    }
                ],
                "duration_ms": 43.1,
            },
            {"name": "registry", "position": 4, "outcome": "passed", "messages": [], "duration_ms": 0.1},
            {
                "name": "approval",
                "position": 5,
                "outcome": "passed",
                "messages": [{"code": "APPROVAL_DECISION", "field": "", "message": "Published.", "severity": "info"}],
                "duration_ms": 0.2,
            },
        ],
    },
}

DISCOVERY_EXAMPLE: dict[str, Any] = {
    "count": 1,
    "limit": 20,
    "offset": 0,
    "next": None,
    "previous": None,
    "results": [
        {
            **_CONTENT,
            "endpoint": {**_CONTENT["endpoint"], "url": None},
            "id": SERVICE_ID,
            "model_id": "acme/llama-chat",
            "slug": "llama-chat",
            "publisher": PUBLISHER,
            "version": "1.0.0",
            "version_id": VERSION_ID,
            "status": "active",
            "published_at": "2025-05-01T09:00:01Z",
            "deprecated_at": None,
            "updated_at": "2025-05-01T09:00:01Z",
        }
    ],
    "facets": {
        "category": {"chat": 1},
        "pricing_model": {"per_token": 1},
        "compliance_level": {"public": 1},
    },
}

DRY_RUN_RESULT_EXAMPLE: dict[str, Any] = {
    "valid": False,
    "steps": [
        {
            "name": "schema",
            "outcome": "failed",
            "messages": [
                {
                    "code": "GDPR_REQUIRED",
                    "field": "compliance.gdpr",
                    "message": "Data residency in the EU requires GDPR compliance.",
                    "severity": "error",
                }
            ],
        },
        {"name": "openapi", "outcome": "passed", "messages": []},
        {"name": "policy", "outcome": "passed", "messages": []},
    ],
}
