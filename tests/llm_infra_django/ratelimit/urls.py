"""URLs of the rate limiting tests (used with `pytest.mark.urls`)."""

from django.urls import path

from tests.llm_infra_django.ratelimit import views

urlpatterns = [
    path("drf/bucket", views.BucketView.as_view()),
    path("drf/bucket-no-mixin", views.BucketNoMixinView.as_view()),
    path("drf/window", views.WindowView.as_view()),
    path("drf/fail-closed", views.FailClosedView.as_view()),
    path("drf/scoped", views.ScopedView.as_view()),
    path("drf/unscoped", views.UnscopedView.as_view()),
    path("drf/tenant", views.TenantView.as_view()),
    path("drf/api-key", views.APIKeyView.as_view()),
    path("drf/user", views.UserView.as_view()),
    path("drf/anon", views.AnonView.as_view()),
    path("drf/two-limits", views.TwoLimitsView.as_view()),
    path("plain/sync", views.plain_view),
    path("plain/async", views.async_plain_view),
    path("plain/header", views.header_keyed_view),
    path("plain/async-fail-closed", views.async_fail_closed_view),
    path("limited/sync", views.unlimited_view),
    path("limited/async", views.async_unlimited_view),
]
