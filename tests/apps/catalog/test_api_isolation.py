"""Visibility and tenant isolation: what each kind of caller sees of a provider's models, everywhere.

acme publishes five models — private, tenant (listed: initech), marketplace, public — plus a public draft. globex is
an unrelated tenant, initech a tenant listed by acme's sharing policy, and an anonymous caller has no tenant.
"""

from __future__ import annotations

from typing import Any

import pytest

from apps.catalog import services
from apps.catalog.models import CatalogModel
from apps.tenancy import sharing
from apps.tenancy.models import Role, Tenant
from tests.apps.tenancy.api_support import assert_error, client_for
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.django_db

API = "/api/v1"
ALL = {"m-private", "m-tenant", "m-marketplace", "m-public", "m-draft"}


@pytest.fixture
def world(acme: Tenant, alice: Any, globex: Tenant, published: Any, make_model: Any, make_version: Any) -> dict:
    models: dict[str, CatalogModel] = {}
    for visibility in ("private", "tenant", "marketplace", "public"):
        models[visibility] = published(f"m-{visibility}", visibility=visibility)
        services.submit_evaluation(
            version=models[visibility].versions.get(), actor=alice, values={"benchmark": "mmlu", "score": 70}
        )
    draft = make_model("m-draft", visibility="public")
    make_version(draft, "1.0.0")
    initech = TenantFactory(slug="initech")
    carol = UserFactory(username="carol")
    MembershipFactory(tenant=initech, user=carol, role=Role.OWNER)
    sharing.create_policy(
        resource_type="model",
        resource_id=models["tenant"].sharing_id,
        actor=alice,
        visibility="tenant",
        allowed_tenants=["initech"],
    )
    return {"models": models, "carol": carol}


def visible_to(client: Any) -> set[str]:
    return {row["slug"] for row in client.get(f"{API}/models/").json()["results"]}


def test_who_sees_which_model_in_the_list(world: dict, alice: Any, bob: Any) -> None:
    assert visible_to(client_for(alice)) == ALL
    assert visible_to(client_for(world["carol"])) == {"m-tenant", "m-marketplace", "m-public"}
    assert visible_to(client_for(bob)) == {"m-marketplace", "m-public"}
    assert visible_to(client_for()) == {"m-public"}


@pytest.mark.parametrize(
    "path",
    [
        "models/acme--m-private/",
        "models/acme--m-private/versions/",
        "models/acme--m-private/versions/1.0.0/",
        "models/acme--m-private/lineage/",
        "models/acme--m-private/compare/?a=1.0.0&b=1.0.0",
        "models/acme--m-private/compliance/",
        "models/acme--m-draft/",
        "models/acme--m-tenant/lineage/",
        "models/acme--nothing-here/",
    ],
)
def test_models_another_tenant_may_not_see_are_404_everywhere(world: dict, bob: Any, path: str) -> None:
    # when
    response = client_for(bob).get(f"{API}/{path}")

    # then the same answer as for a model that does not exist
    assert_error(response, 404, "not_found")


def test_the_owner_and_a_listed_tenant_reach_what_is_theirs_to_see(world: dict, alice: Any) -> None:
    for path in ("models/acme--m-private/", "models/acme--m-private/lineage/", "models/acme--m-draft/versions/"):
        assert client_for(alice).get(f"{API}/{path}").status_code == 200
    assert client_for(world["carol"]).get(f"{API}/models/acme--m-tenant/lineage/").status_code == 200


def test_the_leaderboard_only_ranks_visible_models(world: dict, alice: Any, bob: Any) -> None:
    def ranked(client: Any, query: str) -> set[str]:
        return {row["model"] for row in client.get(f"{API}/leaderboard/{query}").json()["results"]}

    for query in ("?benchmark=mmlu", ""):
        assert ranked(client_for(bob), query) == {"acme--m-marketplace", "acme--m-public"}
        assert ranked(client_for(), query) == {"acme--m-public"}
        assert ranked(client_for(alice), query) == {
            "acme--m-private",
            "acme--m-tenant",
            "acme--m-marketplace",
            "acme--m-public",
        }


def test_evaluations_of_invisible_models_are_hidden(world: dict, bob: Any) -> None:
    # given
    private_result = world["models"]["private"].versions.get().evaluations.get()

    # when
    listed = client_for(bob).get(f"{API}/evaluations/").json()["results"]

    # then
    assert {row["model"] for row in listed} == {"acme--m-marketplace", "acme--m-public"}
    assert_error(client_for(bob).get(f"{API}/evaluations/{private_result.pk}/"), 404)


def test_another_tenant_cannot_write_to_a_model_it_sees(world: dict, bob: Any) -> None:
    # given a public model of acme that bob sees
    client = client_for(bob)

    # when / then
    assert_error(client.patch(f"{API}/models/acme--m-public/", {"name": "Mine"}, format="json"), 403)
    assert_error(
        client.post(f"{API}/models/acme--m-public/versions/", {"version": "9.0.0"}, format="json"),
        403,
    )
    assert_error(
        client.post(
            f"{API}/evaluations/",
            {"model": "acme--m-public", "version": "1.0.0", "benchmark": "humaneval", "score": 99},
            format="json",
        ),
        403,
    )
    assert_error(client.patch(f"{API}/models/acme--m-private/", {"name": "Mine"}, format="json"), 404)
    assert CatalogModel.objects.get(slug="m-public").name == "M Public"


def test_a_blocked_tenant_does_not_see_even_a_public_model(world: dict, alice: Any, bob: Any) -> None:
    # given acme blocks globex on its public model
    sharing.create_policy(
        resource_type="model",
        resource_id=world["models"]["public"].sharing_id,
        actor=alice,
        visibility="public",
        blocked_tenants=["globex"],
    )

    # when / then
    assert visible_to(client_for(bob)) == {"m-marketplace"}
    assert_error(client_for(bob).get(f"{API}/models/acme--m-public/"), 404)


def test_a_grant_shows_a_marketplace_model_to_its_holder_only_while_active(
    world: dict, alice: Any, bob: Any, globex: Tenant
) -> None:
    # given globex holds a grant on acme's tenant-visibility model
    policy = sharing.SharingPolicy.objects.get(resource_id=world["models"]["tenant"].sharing_id)
    policy = sharing.update_policy(
        policy=policy, actor=alice, allowed_tenants=["initech", "globex"], requires_approval=False
    )
    grant = sharing.request_access(policy=policy, consumer=globex, actor=bob).grant
    sharing.update_policy(policy=policy, actor=alice, allowed_tenants=["initech"])
    assert "m-tenant" in visible_to(client_for(bob))

    # when the grant is revoked
    sharing.revoke_grant(grant=grant, actor=alice)

    # then
    assert "m-tenant" not in visible_to(client_for(bob))


def test_a_header_naming_a_tenant_the_caller_is_not_in_is_refused(world: dict, bob: Any) -> None:
    assert_error(client_for(bob, tenant="acme").get(f"{API}/models/"), 403)


def test_making_a_model_private_keeps_its_sharing_policy_in_step(world: dict, alice: Any) -> None:
    # when
    response = client_for(alice).patch(f"{API}/models/acme--m-tenant/", {"visibility": "private"}, format="json")

    # then
    assert response.status_code == 200
    assert sharing.SharingPolicy.objects.get(resource_id=world["models"]["tenant"].sharing_id).visibility == "private"
    assert "m-tenant" not in visible_to(client_for(world["carol"]))


def test_the_lineage_of_a_visible_model_does_not_reveal_private_neighbours(world: dict, alice: Any, bob: Any) -> None:
    # given the private model derived from the public one, which was trained on a private dataset through a run
    acme = world["models"]["public"].owner
    services.add_lineage_edge(
        owner=acme,
        actor=alice,
        source={"kind": "model_version", "ref": "acme--m-private@1.0.0"},
        target={"kind": "model_version", "ref": "acme--m-public@1.0.0"},
        edge_type="derived_from",
    )
    services.create_dataset(owner=acme, actor=alice, slug="secret-data", values={"name": "Secret customer data"})
    services.create_training_run(
        owner=acme,
        actor=alice,
        values={"name": "secret-run"},
        datasets=["acme--secret-data"],
        model_version="acme--m-public@1.0.0",
    )

    # when
    seen_by_bob = client_for(bob).get(f"{API}/models/acme--m-public/lineage/").json()
    seen_by_alice = client_for(alice).get(f"{API}/models/acme--m-public/lineage/").json()
    compliance = client_for(bob).get(f"{API}/models/acme--m-public/compliance/").json()

    # then bob sees the shape of the graph, not the names of what is private
    labels = {n["label"] for n in seen_by_bob["nodes"]}
    assert "acme--m-public@1.0.0" in labels
    assert not {"acme--m-private@1.0.0", "Secret customer data", "secret-run"} & labels
    assert sum(n["label"] == "(not visible to you)" for n in seen_by_bob["nodes"]) == 3
    assert len(seen_by_bob["edges"]) == len(seen_by_alice["edges"])
    assert {"acme--m-private@1.0.0", "Secret customer data", "secret-run"} <= {
        n["label"] for n in seen_by_alice["nodes"]
    }
    assert compliance["datasets"] == ["private dataset 1"]
    assert "Secret" not in str(compliance)
