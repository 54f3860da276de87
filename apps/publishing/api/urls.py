"""Routes of the publishing REST API, included under `/api/v1/` (namespace `publishing`)."""

from collections.abc import Callable
from typing import Any

from django.urls import path

from apps.publishing.api.views import ServiceViewSet

app_name = "publishing"


def _view(**actions: str) -> Callable[..., Any]:
    """The viewset bound to these HTTP method → action names."""
    return ServiceViewSet.as_view(actions)


urlpatterns = [
    path("services/", _view(get="list", post="create"), name="service-list"),
    path("services/validate/", _view(post="validate"), name="service-validate"),
    path("services/<uuid:pk>/", _view(get="retrieve", delete="destroy"), name="service-detail"),
    path("services/<uuid:pk>/versions/", _view(get="versions", post="create_version"), name="service-versions"),
    path("services/<uuid:pk>/status/", _view(get="publishing_status"), name="service-status"),
    *(
        path(f"services/<uuid:pk>/{name}/", _view(post=name), name=f"service-{name}")
        for name in ("approve", "reject", "deprecate", "suspend", "reactivate", "retire")
    ),
]
