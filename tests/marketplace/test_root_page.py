"""The root page `/`: what this server is and its links, for browsers (HTML, no script, nothing fetched from
elsewhere) and API clients (JSON); the same for every caller; the admin's "View site" goes there."""

from __future__ import annotations

import re

import pytest
from django.test import Client, override_settings

from apps.tenancy.models import Role
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.django_db

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
LINKS = {"/admin/", "/api/docs/", "/api/schema/", "/v1/models", "/healthz", "/readyz"}


def hrefs(html: bytes) -> set[str]:
    return set(re.findall(r'href="([^"]+)"', html.decode()))


def test_a_browser_gets_a_page_with_the_links() -> None:
    # when
    response = Client().get("/", HTTP_ACCEPT=BROWSER)

    # then
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert "Accept" in response["Vary"]
    assert hrefs(response.content) == LINKS
    page = response.content.decode()
    assert "OpenAI-compatible proxy" in page
    assert "curl -s http://testserver/v1/chat/completions -H &quot;Authorization: Bearer $KEY&quot;" in page
    assert "<script" not in page and "//" not in page.replace("http://testserver/", "")


def test_every_link_of_the_page_leads_somewhere() -> None:
    # given
    client = Client()
    links = hrefs(client.get("/", HTTP_ACCEPT=BROWSER).content)

    # when
    statuses = {link: client.get(link).status_code for link in links}

    # then the pages answer; the admin asks to sign in, the proxy for a key
    assert statuses == {
        "/admin/": 302,
        "/api/docs/": 200,
        "/api/schema/": 200,
        "/v1/models": 401,
        "/healthz": 200,
        "/readyz": 200,
    }


@pytest.mark.parametrize("graphiql", [True, False])
def test_graphiql_is_linked_only_where_it_is_on(graphiql: bool) -> None:
    # given
    with override_settings(MARKETPLACE_GATEWAY={"GRAPHIQL": graphiql}):
        # when
        page = Client().get("/", HTTP_ACCEPT=BROWSER)
        index = Client().get("/", HTTP_ACCEPT="application/json").json()

    # then
    assert ('href="/graphql"' in page.content.decode()) is graphiql
    assert ("graphiql" in index["links"]) is graphiql
    assert index["links"]["graphql"] == "/graphql"


def test_an_api_client_gets_a_json_index_of_the_same_links() -> None:
    # when
    response = Client().get("/", HTTP_ACCEPT="application/json")

    # then
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"name", "description", "links", "example"}
    assert set(body["links"].values()) == LINKS | {"/graphql"}
    assert body["example"].startswith("curl -s http://testserver/v1/chat/completions ")


def test_the_page_is_the_same_for_every_caller() -> None:
    # given a tenant with a member, and a platform admin
    tenant = TenantFactory(slug="secret-tenant-slug", name="Secret Tenant Name")
    member = MembershipFactory(tenant=tenant, user=UserFactory(username="member-name"), role=Role.OWNER).user
    staff = UserFactory(username="staff-name", is_staff=True, is_superuser=True)
    signed_in = []
    for user in (member, staff):
        client = Client()
        client.force_login(user)
        signed_in.append(client)

    # when
    responses = [client.get("/", HTTP_ACCEPT=BROWSER) for client in (Client(), *signed_in)]

    # then nothing of any tenant or user shows
    assert [response.status_code for response in responses] == [200] * 3
    pages = [response.content for response in responses]
    assert pages[0] == pages[1] == pages[2]
    assert not re.search(rb"secret-tenant|Secret Tenant|member-name|staff-name|csrf", pages[0], re.IGNORECASE)


def test_only_reads_are_answered() -> None:
    assert Client().post("/", {}).status_code == 405


def test_the_admins_view_site_link_leads_to_the_root_page() -> None:
    # given
    client = Client()
    client.force_login(UserFactory(username="platform", is_staff=True, is_superuser=True))

    # when
    admin = client.get("/admin/")

    # then
    assert admin.status_code == 200
    (view_site,) = re.findall(r'<a href="([^"]*)">View site</a>', admin.content.decode())
    assert view_site == "/"
    assert client.get(view_site, HTTP_ACCEPT=BROWSER).status_code == 200
