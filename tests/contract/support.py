"""Contract fuzzing of the REST API: the app's own `/api/schema/`, loaded into schemathesis over WSGI in-process, and
every documented operation driven with generated requests (valid and invalid) under a real API key.

schemathesis' pytest integration does not fit here: `schemathesis.pytest.from_fixture` fails under pytest 9 (it sets
`Function._nodeid`), and the eager `schema.parametrize()` generates the schema while collecting, in every xdist worker.
So this drives schemathesis' Python API itself: `operation.as_strategy(...)` under hypothesis, one subtest per
operation and kind of data.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

API = "/api/v1"
# The proxy's operations share the document but are not fuzzed here: every call is metered (admission, ledger,
# an upstream) and answers in OpenAI's shapes; tests/apps/consumption covers them and posts their documented examples.
PROXY = "/v1/"

# Examples per operation and kind of data (valid, then invalid). Small on purpose: ~80 operations run in a few
# minutes on a loaded 2-core machine. Raise it for a deeper run: CONTRACT_EXAMPLES=200.
MAX_EXAMPLES = int(os.environ.get("CONTRACT_EXAMPLES", "10"))

# Every response must be no 5xx, with a documented status code, the documented content type, a body matching the
# schema documented for that status code, and the documented headers. Not enabled, each for a reason:
# - positive_data_acceptance: the request schemas are looser than the input rules (unknown body fields are refused
#   but not declared `additionalProperties: false`; references must name existing rows; rules across fields), so
#   schema-valid data also gets documented 400s;
# - negative_data_rejection: DRF's limit/offset pagination falls back to its defaults for an invalid `limit` or
#   `offset`, and an empty filter value means no filter, so some schema-invalid queries get a 200;
# - ignored_auth: the key is a plain header of every request (its secret exists only once the world is seeded), which
#   the check cannot take away; authentication has its own tests in the apps;
# - use_after_free, ensure_resource_availability (stateful phase), unsupported_method, missing_required_header
#   (coverage phase): they judge only requests of schemathesis' own runner phases, not generated here.
CONFIG: dict[str, Any] = {
    "checks": {
        "enabled": False,
        "not_a_server_error": {"enabled": True},
        "status_code_conformance": {"enabled": True},
        "content_type_conformance": {"enabled": True},
        "response_schema_conformance": {"enabled": True},
        "response_headers_conformance": {"enabled": True},
    },
}

# The operations, by the test module that fuzzes them (each with its own world).
GROUPS: dict[str, tuple[str, ...]] = {
    "tenancy": (f"{API}/tenants/", f"{API}/sharing/"),
    "catalog": (
        f"{API}/models/",
        f"{API}/datasets/",
        f"{API}/training-runs/",
        f"{API}/evaluations/",
        f"{API}/leaderboard/",
    ),
    "publishing": (f"{API}/services/",),
    "consumption": (f"{API}/keys/", f"{API}/usage/", f"{API}/quota/", f"{API}/routing/", f"{API}/billing/"),
}


@dataclass
class World:
    """The key the fuzzer calls with, its tenant, and real identifiers offered beside random ones."""

    secret: str
    tenant: str
    # `values[(prefix, name)]`: values of the path parameter `name` under `prefix` (the first matching prefix wins).
    values: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    # `own[label][name]`: rows only this operation is given, e.g. those it destroys (none: random values only).
    own: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def real_values(self, operation: Any, name: str) -> list[str]:
        if operation.label in self.own:
            return self.own[operation.label].get(name, [])
        for (prefix, parameter), values in self.values.items():
            if parameter == name and operation.path.startswith(prefix):
                return values
        return []


@functools.cache
def load_schema() -> Any:
    """The published schema, fetched once per process from `/api/schema/` through the WSGI handler."""
    config = schemathesis.Config.from_dict(CONFIG)
    return schemathesis.openapi.from_wsgi("/api/schema/", WSGIHandler(), config=config)


def operations(prefixes: Iterable[str]) -> list[Any]:
    """The schema's REST operations under `prefixes`, in schema order (a malformed definition fails here)."""
    found = [result.ok() for result in load_schema().get_all_operations()]
    return [
        operation
        for operation in found
        if operation.path.startswith(tuple(prefixes)) and not operation.path.startswith(PROXY)
    ]


def _known_path_parameters(operation: Any, world: World) -> list[dict[str, str]]:
    """Every combination of real values of the operation's path parameters ([] when one has none)."""
    names = re.findall(r"{(\w+)}", operation.path)
    choices = [world.real_values(operation, name) for name in names]
    if not names or not all(choices):
        return []
    return [dict(zip(names, combination, strict=True)) for combination in itertools.product(*choices)]


def strategies(operation: Any, world: World) -> Iterator[tuple[str, Any]]:
    """(kind, strategy): the documented examples; valid data; invalid data — each on random and on real rows."""
    auth = {"Authorization": f"Bearer {world.secret}"}
    examples = operation.get_strategies_from_examples()
    if examples:
        yield "examples", st.one_of(examples).map(lambda case: _with_headers(case, auth))
    known = _known_path_parameters(operation, world)
    # Valid data names the key's own tenant in X-Tenant (a random one is only ever a 403).
    headers = {**auth, "X-Tenant": world.tenant}
    yield (
        "valid",
        st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE, headers=headers),
            *(operation.as_strategy(GenerationMode.POSITIVE, headers=headers, path_parameters=path) for path in known),
        ),
    )
    if operation.body or operation.query:
        invalid = [operation.as_strategy(GenerationMode.NEGATIVE, headers=auth)]
        invalid += [operation.as_strategy(GenerationMode.NEGATIVE, headers=auth, path_parameters=p) for p in known]
        yield "invalid", st.one_of(invalid)
    elif any(_constrained(parameter.definition.get("schema", {})) for parameter in operation.path_parameters):
        yield "invalid", operation.as_strategy(GenerationMode.NEGATIVE, headers=auth)
    # else only free strings (a `{slug}`, the X-Tenant header): no value breaks their schema.


def _constrained(schema: dict[str, Any]) -> bool:
    """Whether a parameter's schema rules some values out (a plain string has no invalid value)."""
    return schema.get("type") != "string" or bool({"format", "pattern", "enum", "minLength", "maxLength"} & set(schema))


def _with_headers(case: Any, headers: dict[str, str]) -> Any:
    case.headers = {**(case.headers or {}), **headers}
    return case


def call_all(strategy: Any) -> None:
    """Send the strategy's requests and check every response."""

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,  # the same requests on every run: CI fails only on a change of the code
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        print_blob=False,
    )
    @given(case=strategy)
    def call(case: Any) -> None:
        case.call_and_validate()

    call()


def fuzz(group: str, world: World, subtests: Any) -> None:
    """Fuzz every operation of the group, each kind of data as its own subtest."""
    found = operations(GROUPS[group])
    if not found:
        pytest.fail(f"The schema has no operation under {GROUPS[group]}")
    for operation in found:
        for kind, strategy in strategies(operation, world):
            with subtests.test(msg=f"{operation.label} ({kind})"):
                call_all(strategy)
