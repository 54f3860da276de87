"""The upstream credential of a service is used (the probe sends it) but appears in no API response, no admin page
and no log line, in clear or encrypted."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from apps.publishing.crypto import decrypt_secret
from apps.publishing.models import Service, ServiceVersion, ValidationRun
from apps.tenancy.models import AuditLog
from tests.apps.publishing.test_api import API, definition

pytestmark = pytest.mark.django_db(transaction=True)

# Deliberately not shaped like a token the log redaction recognises: it must not be logged at all.
SECRET = "zq7-upstream-credential-9f3a-4c1d"


def test_the_secret_is_used_but_never_shown(
    publisher: Any, publisher_admin: Any, staff: Any, local_upstream: Any, all_logs: io.StringIO
) -> None:
    # given: a service whose upstream needs a bearer token, published and versioned through the API
    alice = APIClient()
    alice.force_authenticate(publisher_admin)
    endpoint = {
        "url": local_upstream.url + "/v1",
        "protocol": "openai",
        "model": "local-model",
        "auth": {"kind": "bearer", "secret": SECRET},
    }
    bodies: list[str] = []
    created = alice.post(API, definition(endpoint=endpoint), format="json")
    assert created.status_code == 202 and created.json()["version"]["status"] == "active"
    service_id = created.json()["service"]["id"]
    bodies.append(created.content.decode())
    next_version = {**definition(endpoint=endpoint, version="1.1.0")}
    del next_version["slug"]
    versioned = alice.post(f"{API}{service_id}/versions/", next_version, format="json")
    assert versioned.status_code == 202
    bodies.append(versioned.content.decode())
    bodies.append(alice.post(f"{API}validate/", definition(endpoint=endpoint), format="json").content.decode())
    failed = alice.post(
        API, definition(slug="broken", endpoint={**endpoint, "url": "http://127.0.0.1:9/v1"}), format="json"
    )
    assert failed.status_code == 202 and failed.json()["version"]["status"] == "failed_validation"
    bodies.append(failed.content.decode())

    # then: the upstream received it, and it is stored encrypted
    assert ("/v1/models", SECRET) in {(path, h.get("Authorization", "")[7:]) for path, h in local_upstream.requests}
    version = ServiceVersion.objects.get(service_id=service_id, version="1.0.0")
    ciphertext = version.upstream_secret_encrypted
    assert SECRET not in ciphertext and decrypt_secret(ciphertext) == SECRET

    # when: every read of the API, as the publisher, a consumer-less staff member and anonymously
    operator = APIClient()
    operator.force_authenticate(staff)
    for client in (alice, operator):
        for url in (
            API,
            f"{API}?search=echo",
            f"{API}{service_id}/",
            f"{API}{service_id}/versions/",
            f"{API}{service_id}/status/",
            f"{API}{service_id}/status/?version=1.0.0",
        ):
            response = client.get(url)
            assert response.status_code == 200, url
            bodies.append(response.content.decode())
    bodies.append(APIClient().get(API).content.decode())
    bodies.append(alice.post(f"{API}{service_id}/deprecate/", {"version": "1.0.0"}, format="json").content.decode())

    # and every admin page about it, as staff and as the publisher's owner
    pages: list[str] = []
    run = ValidationRun.objects.filter(version=version).first()
    assert run is not None
    for user in (staff, publisher_admin):
        client = Client()
        client.force_login(user)
        for url in (
            reverse("admin:publishing_serviceversion_changelist"),
            reverse("admin:publishing_serviceversion_changelist") + "?q=echo",
            reverse("admin:publishing_serviceversion_change", args=[version.pk]),
            reverse("admin:publishing_serviceversion_history", args=[version.pk]),
            reverse("admin:publishing_service_changelist"),
            reverse("admin:publishing_service_change", args=[service_id]),
            reverse("admin:publishing_validationrun_changelist"),
            reverse("admin:publishing_validationrun_change", args=[run.pk]),
        ):
            response = client.get(url)
            assert response.status_code == 200, url
            pages.append(response.content.decode())
        export = client.post(
            reverse("admin:publishing_serviceversion_changelist"),
            {"action": "export_as_csv", ACTION_CHECKBOX_NAME: [str(version.pk)], "index": 0},
        )
        pages.append(b"".join(export.streaming_content).decode())

    # then: neither the secret nor its ciphertext appears anywhere
    logs = all_logs.getvalue()
    assert "publishing" in logs  # the capture works
    audit = "".join(str(entry.after) + str(entry.before) for entry in AuditLog.objects.all())
    for text in (*bodies, *pages, logs, audit):
        assert SECRET not in text
        assert ciphertext not in text
        assert "upstream_secret" not in text
    assert Service.objects.count() == 2
