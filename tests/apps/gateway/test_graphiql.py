"""GraphiQL at /graphql: only with MARKETPLACE_GATEWAY["GRAPHIQL"], only for browser GETs, from vendored files."""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import re
import sys
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.template.loader import get_template
from django.test import Client, override_settings
from graphene_django.views import GraphQLView

from apps.gateway.conf import gateway_settings

pytestmark = pytest.mark.django_db

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
GRAPHIQL_ON = override_settings(MARKETPLACE_GATEWAY={"GRAPHIQL": True})
VENDORED = Path(settings.BASE_DIR) / "apps" / "gateway" / "static" / "gateway" / "graphiql"
PINNED_SRI = {
    GraphQLView.whatwg_fetch_sri,
    GraphQLView.react_sri,
    GraphQLView.react_dom_sri,
    GraphQLView.graphiql_sri,
    GraphQLView.graphiql_css_sri,
    GraphQLView.subscriptions_transport_ws_sri,
    GraphQLView.graphiql_plugin_explorer_sri,
    GraphQLView.graphiql_plugin_explorer_css_sri,
}


class Assets(HTMLParser):
    """The URLs of a page's scripts and stylesheets, with their integrity attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        url = values.get("src") if tag == "script" else values.get("href") if tag == "link" else None
        if url is not None:
            self.found.append((url, values.get("integrity")))


def assets_of(html: str) -> list[tuple[str, str | None]]:
    parser = Assets()
    parser.feed(html)
    return parser.found


def sri(content: bytes) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(content).digest()).decode()


def browser_get(client: Client, path: str = "/graphql") -> Any:
    return client.get(path, HTTP_ACCEPT=BROWSER_ACCEPT)


def is_graphiql(response: Any) -> bool:
    return response["Content-Type"].startswith("text/html") and b'<div id="editor">' in response.content


def test_off_by_default_a_browser_is_told_graphiql_is_off_and_how_to_query() -> None:
    # given the default settings (the tests run without settings.dev)
    assert gateway_settings.GRAPHIQL is False

    # when a browser opens /graphql
    response = browser_get(Client())

    # then it gets no GraphiQL but a page saying it is off, how to turn it on and how API clients query
    assert not is_graphiql(response)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    text = re.sub(r"\s+", " ", unescape(response.content.decode()))
    assert "GraphiQL" in text and "switched off" in text
    assert 'MARKETPLACE_GATEWAY = {"GRAPHIQL": True}' in text
    assert "curl -X POST http://testserver/graphql" in text
    assert assets_of(text) == []  # nothing to load, from anywhere
    assert response["Cache-Control"] == "no-store, private"
    assert response["Vary"] == "Accept, Authorization, Cookie"


@pytest.mark.parametrize(
    ("method", "path", "accept"),
    [
        ("get", "/graphql", "application/json"),
        ("get", "/graphql", "*/*"),
        ("get", "/graphql?raw", BROWSER_ACCEPT),
        ("post", "/graphql", BROWSER_ACCEPT),
    ],
)
def test_off_api_clients_still_get_the_json_error(method: str, path: str, accept: str) -> None:
    # when an API client (or a browser asking for raw output, or posting) sends no query
    response = getattr(Client(), method)(path, HTTP_ACCEPT=accept)

    # then the answer is graphene-django's JSON error, as before
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {
        "errors": [{"message": "Must provide query string.", "extensions": {"code": "bad_request"}}]
    }


def test_off_a_browser_sending_a_query_gets_its_result() -> None:
    response = browser_get(Client(), "/graphql?query={__typename}")
    assert response.status_code == 200
    assert response.json() == {"data": {"__typename": "Query"}}


@GRAPHIQL_ON
def test_on_a_browser_gets_graphiql_with_local_assets_only() -> None:
    # when a browser opens /graphql with GraphiQL on
    response = browser_get(Client())

    # then it gets the page, which names no remote URL at all
    assert response.status_code == 200
    assert is_graphiql(response)
    html = response.content.decode()
    assert "://" not in html
    assert "cdn.jsdelivr.net" not in html
    assert response["Cache-Control"] == "no-store, private"
    assert response["Vary"] == "Accept, Authorization, Cookie"

    # and every script and stylesheet is one of our static files
    assets = assets_of(html)
    assert len(assets) == 9  # 2 stylesheets, 6 libraries, graphene-django's graphiql.js
    for url, _ in assets:
        assert url.startswith(settings.STATIC_URL), url
        assert finders.find(url.split("/static/", 1)[1]) is not None, url

    # and the vendored ones carry exactly the integrity hashes graphene-django pins
    assert {integrity for _, integrity in assets if integrity} == PINNED_SRI


@GRAPHIQL_ON
def test_each_vendored_file_matches_its_integrity_hash_as_served() -> None:
    client = Client()
    assets = [(url, integrity) for url, integrity in assets_of(browser_get(client).content.decode()) if integrity]
    assert len(assets) == 8
    for url, integrity in assets:
        # the file on disk (what collectstatic copies) and the bytes WhiteNoise serves both match the pinned hash
        path = finders.find(url.split("/static/", 1)[1])
        assert sri(Path(path).read_bytes()) == integrity, url
        served = client.get(url)
        assert served.status_code == 200, url
        assert sri(b"".join(served.streaming_content)) == integrity, url


def test_the_gateway_template_replaces_graphene_djangos() -> None:
    origin = Path(get_template("graphene/graphiql.html").origin.name)
    assert origin == Path(settings.BASE_DIR) / "apps" / "gateway" / "templates" / "graphene" / "graphiql.html"


def test_the_vendored_files_reference_nothing_remote_or_missing() -> None:
    # stylesheets: fonts and images are inlined (data: URLs), no @import
    for css in VENDORED.rglob("*.css"):
        text = css.read_text()
        assert "@import" not in text, css
        for url in re.findall(r"url\(\s*['\"]?([^'\")]*)", text):
            assert url.startswith("data:"), (css, url[:80])
    # a source map a file names must be there: collectstatic's manifest storage (production) fails on a missing one
    for path in [*VENDORED.rglob("*.js"), *VENDORED.rglob("*.css")]:
        for name in re.findall(r"sourceMappingURL=([^\s*]+)", path.read_text()):
            assert (path.parent / name).is_file(), (path, name)
    # and each package keeps its license next to its files
    for directory in (d for d in VENDORED.iterdir() if d.is_dir()):
        assert any(f.name.startswith("LICENSE") for f in directory.iterdir()), directory


@GRAPHIQL_ON
@pytest.mark.parametrize(
    ("method", "path", "accept"),
    [
        ("post", "/graphql", BROWSER_ACCEPT),  # only a GET gets the page
        ("get", "/graphql", "application/json"),
        ("get", "/graphql", "*/*"),
        ("get", "/graphql?raw", BROWSER_ACCEPT),
    ],
)
def test_on_api_clients_are_unaffected(method: str, path: str, accept: str) -> None:
    response = getattr(Client(), method)(
        path,
        json.dumps({"query": "{ __typename }"}) if method == "post" else None,
        content_type="application/json",
        HTTP_ACCEPT=accept,
    )
    assert not is_graphiql(response)
    assert response["Content-Type"].startswith("application/json")
    if method == "post":
        assert response.status_code == 200
        assert response.json() == {"data": {"__typename": "Query"}}


def test_the_setting_is_read_per_request() -> None:
    client = Client()
    with GRAPHIQL_ON:
        assert is_graphiql(browser_get(client))
    assert not is_graphiql(browser_get(client))


PROD_ENV = {
    "SECRET_KEY": "prod-" + "x7Gq2vLm9Rt4Wz8Kp3Nc6Hb1Jd5Fs0Ay" * 2,
    "ALLOWED_HOSTS": "marketplace.example.com",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}


def test_on_in_development_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # the settings modules as they are (settings.prod needs its environment to load)
    for name, value in PROD_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delitem(sys.modules, "settings.prod", raising=False)
    dev, prod = importlib.import_module("settings.dev"), importlib.import_module("settings.prod")

    assert dev.MARKETPLACE_GATEWAY["GRAPHIQL"] is True
    assert prod.MARKETPLACE_GATEWAY.get("GRAPHIQL", False) is False
