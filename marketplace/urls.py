"""Project URLs: the root page, operations endpoints, admin, API schema and docs, GraphQL."""

from django.contrib import admin
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.gateway.views import GatewayView
from marketplace import views

urlpatterns = [
    path("", views.index, name="index"),
    path("", include("llm_infra_django.urls")),
    path("admin/", admin.site.urls),
    path("", include("apps.consumption.urls")),
    path("api/v1/", include("apps.tenancy.api.urls")),
    path("api/v1/", include("apps.catalog.api.urls")),
    path("api/v1/", include("apps.publishing.api.urls")),
    path("api/v1/", include("apps.consumption.api.urls")),
    path("api/v1/", include("apps.billing.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    # GraphiQL (browser GETs) only when MARKETPLACE_GATEWAY["GRAPHIQL"] is on (settings.dev), from vendored files.
    path("graphql", csrf_exempt(GatewayView.as_view()), name="graphql"),
]

handler400 = "llm_infra_django.views.bad_request"
handler403 = "llm_infra_django.views.permission_denied"
handler404 = "llm_infra_django.views.page_not_found"
handler500 = "llm_infra_django.views.server_error"
