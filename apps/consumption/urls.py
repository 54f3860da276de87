"""URLs of the proxy: the OpenAI-compatible endpoints under /v1/ and the native consume endpoint."""

from django.urls import path

from apps.consumption import views

urlpatterns = [
    path("v1/models", views.models, name="v1-models"),
    path("v1/chat/completions", views.chat_completions, name="v1-chat-completions"),
    path("v1/completions", views.completions, name="v1-completions"),
    path("v1/embeddings", views.embeddings, name="v1-embeddings"),
    path("api/v1/consume/<uuid:service_id>/", views.consume, name="consume"),
]
