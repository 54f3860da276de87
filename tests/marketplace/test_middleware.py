"""The project's middleware: WhiteNoise serving static files on Django's asynchronous handler."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.core.asgi import get_asgi_application

from tests.support.asgi import asgi_request

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_static_files_are_served_under_asgi_without_a_warning(method: str, recwarn: pytest.WarningsRecorder) -> None:
    # given the project's ASGI application (WhiteNoise in its middleware) and a static file of the admin
    expected = Path(finders.find("admin/css/base.css")).read_bytes()
    # (what earlier tests left for the garbage collector — a pooled upstream connection — warns now, not below)
    gc.collect()
    recwarn.clear()

    # when a browser fetches it
    response = asgi_request(get_asgi_application(), method, "/static/admin/css/base.css")

    # then the file is served whole, and Django has nothing to warn about (a raw line in the server's log: it would
    # read a synchronous iterator in a thread)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert response.content == (expected if method == "GET" else b"")
    assert int(response.headers["content-length"]) == len(expected)
    assert [str(w.message) for w in recwarn] == []
