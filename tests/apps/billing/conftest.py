"""Fixtures of the billing tests: the consumption tests' tenants, services, keys and live servers."""

from tests.apps.consumption.conftest import (  # noqa: F401 (fixtures)
    _fresh_process_state,
    consumer,
    echo_service,
    make_key,
    provider,
)
from tests.apps.consumption.live.conftest import start_servers  # noqa: F401 (fixture)
