"""URLs of the infra test project: the package's own URLs plus the views under test."""

from django.urls import include, path

from tests.llm_infra_django import views

urlpatterns = [
    path("", include("llm_infra_django.urls")),
    path("plain/raise/<str:name>", views.plain_raise),
    path("plain/ok", views.plain_ok),
    path("async/raise/<str:name>", views.async_raise),
    path("async/ok", views.async_ok),
    path("drf/raise/<str:name>", views.DrfRaiseView.as_view()),
    path("drf/validate", views.DrfValidateView.as_view()),
    path("secrets", views.log_secrets),
]

handler400 = "llm_infra_django.views.bad_request"
handler403 = "llm_infra_django.views.permission_denied"
handler404 = "llm_infra_django.views.page_not_found"
handler500 = "llm_infra_django.views.server_error"
