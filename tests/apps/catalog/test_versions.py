"""Model versions: SemVer order and "latest", strictly increasing versions, artifact rules with field paths."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.catalog import selectors, services
from apps.catalog.exceptions import InvalidTransitionError
from apps.catalog.models import ModelVersion, VersionStatus
from llm_infra_django.errors import ConflictError, ValidationError
from tests.apps.catalog.factories import artifact

pytestmark = pytest.mark.django_db


def test_versions_are_ordered_by_semver_precedence_not_text(make_model: Any, make_version: Any) -> None:
    # given versions added in increasing SemVer order, whose text order differs
    model = make_model()
    for number in [
        "1.2.0",
        "1.9.0",
        "1.10.0",
        "2.0.0-alpha",
        "2.0.0-alpha.1",
        "2.0.0-beta.2",
        "2.0.0-beta.11",
        "2.0.0",
    ]:
        make_version(model, number)

    # when
    ordered = [v.version for v in selectors.list_versions(model)]

    # then
    assert ordered == [
        "2.0.0",
        "2.0.0-beta.11",
        "2.0.0-beta.2",
        "2.0.0-alpha.1",
        "2.0.0-alpha",
        "1.10.0",
        "1.9.0",
        "1.2.0",
    ]


def test_latest_is_the_greatest_ready_release(make_model: Any, make_version: Any, alice: Any) -> None:
    # given a ready 1.10.0, a building 1.11.0 and a ready pre-release 2.0.0-rc.1
    model = make_model()
    make_version(model, "1.9.0")
    make_version(model, "1.10.0")
    make_version(model, "1.11.0", status="building")
    make_version(model, "2.0.0-rc.1")

    # when
    latest = selectors.latest_version(ModelVersion.objects.filter(model=model))

    # then neither the unfinished version nor the pre-release is "latest"
    assert latest is not None and latest.version == "1.10.0"


def test_latest_moves_when_a_greater_version_becomes_ready(make_model: Any, make_version: Any, alice: Any) -> None:
    # given
    model = make_model()
    make_version(model, "1.0.0")
    building = make_version(model, "1.1.0", status="building")

    # when
    services.update_version(version=building, actor=alice, values={"status": "ready"})

    # then
    assert selectors.latest_version(ModelVersion.objects.filter(model=model)).version == "1.1.0"


@pytest.mark.parametrize("second", ["1.0.0", "0.9.9", "1.0.0-rc.1"])
def test_a_new_version_must_be_strictly_greater(make_model: Any, make_version: Any, second: str) -> None:
    # given
    model = make_model()
    make_version(model, "1.0.0")

    # when / then
    with pytest.raises(ValidationError) as caught:
        make_version(model, second)
    assert "version" in caught.value.details["fields"]
    assert ModelVersion.objects.filter(model=model).count() == 1


@pytest.mark.parametrize("text", ["1.0", "v1.0.0", "01.0.0", "1.0.0+build.5", "", "latest"])
def test_versions_that_are_not_semver_are_refused(make_model: Any, make_version: Any, text: str) -> None:
    # given
    model = make_model()

    # when / then
    with pytest.raises(ValidationError) as caught:
        make_version(model, text)
    assert "version" in caught.value.details["fields"]


semver_parts = st.tuples(st.integers(0, 30), st.integers(0, 30), st.integers(0, 30))


@settings(max_examples=40, deadline=None)
@given(st.lists(semver_parts, min_size=1, max_size=8, unique=True))
def test_any_increasing_sequence_is_accepted_and_latest_is_the_maximum(parts: list[tuple[int, int, int]]) -> None:
    # given versions sorted ascending (what "strictly increasing" allows)
    from apps.tenancy.models import Role
    from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory

    user = UserFactory()
    tenant = TenantFactory()
    MembershipFactory(tenant=tenant, user=user, role=Role.ADMIN)
    model = services.create_model(owner=tenant, actor=user, slug="m1", values={"name": "M"})
    numbers = [f"{a}.{b}.{c}" for a, b, c in sorted(parts)]

    # when
    for number in numbers:
        services.create_version(
            model=model, actor=user, version=number, values={"artifacts": [artifact(number)], "status": "ready"}
        )

    # then
    assert selectors.latest_version(ModelVersion.objects.filter(model=model)).version == numbers[-1]
    assert [v.version for v in selectors.list_versions(model)] == list(reversed(numbers))


@pytest.mark.parametrize(
    ("digest", "valid"),
    [
        ("a" * 64, True),
        ("A" * 64, True),
        ("0123456789abcdef" * 4, True),
        ("a" * 63, False),
        ("a" * 65, False),
        ("g" * 64, False),
        ("sha256:" + "a" * 57, False),
        ("", False),
    ],
)
def test_artifact_checksums_must_be_64_hex_characters(
    make_model: Any, make_version: Any, digest: str, valid: bool
) -> None:
    # given
    model = make_model()
    artifacts = [artifact("a.safetensors"), artifact("b.safetensors", sha256=digest)]

    # when / then
    if valid:
        version = make_version(model, "1.0.0", artifacts=artifacts)
        assert version.artifacts[1]["sha256"] == digest.lower()
    else:
        with pytest.raises(ValidationError) as caught:
            make_version(model, "1.0.0", artifacts=artifacts)
        assert set(caught.value.details["fields"]) == {"artifacts[1].sha256"}
        assert not ModelVersion.objects.exists()


def test_every_bad_artifact_field_is_named_by_its_path(make_model: Any, make_version: Any) -> None:
    # given
    model = make_model()
    artifacts = [
        {"uri": "ftp://x/y", "format": "zip", "size_bytes": -1, "sha256": "nope", "extra": 1},
        "not an object",
    ]

    # when
    with pytest.raises(ValidationError) as caught:
        make_version(model, "1.0.0", artifacts=artifacts)

    # then
    assert set(caught.value.details["fields"]) == {
        "artifacts[0].uri",
        "artifacts[0].format",
        "artifacts[0].size_bytes",
        "artifacts[0].sha256",
        "artifacts[0].extra",
        "artifacts[1]",
    }


def test_size_is_the_sum_of_the_artifacts(make_model: Any, make_version: Any) -> None:
    # given / when
    version = make_version(make_model(), "1.0.0", artifacts=[artifact("a", 1000), artifact("b", 234)])

    # then
    assert version.size_bytes == 1234


def test_a_ready_version_needs_an_artifact(make_model: Any, make_version: Any) -> None:
    # when / then
    with pytest.raises(ValidationError) as caught:
        make_version(make_model(), "1.0.0", artifacts=[], status="ready")
    assert "status" in caught.value.details["fields"]


def test_version_status_follows_its_state_machine(make_model: Any, make_version: Any, alice: Any) -> None:
    # given a ready version
    version = make_version(make_model(), "1.0.0")

    # when / then: ready → building is refused, ready → deprecated → ready is allowed
    with pytest.raises(InvalidTransitionError):
        services.update_version(version=version, actor=alice, values={"status": "building"})
    version = services.update_version(version=version, actor=alice, values={"status": "deprecated"})
    version = services.update_version(version=version, actor=alice, values={"status": "ready"})
    assert version.status == VersionStatus.READY


def test_artifacts_are_frozen_once_the_version_is_built(make_model: Any, make_version: Any, alice: Any) -> None:
    # given
    version = make_version(make_model(), "1.0.0")

    # when / then
    with pytest.raises(ConflictError):
        services.update_version(version=version, actor=alice, values={"artifacts": [artifact("other")]})
