"""Routes of the catalog REST API, included under `/api/v1/` (namespace `catalog`)."""

from django.urls import path

from apps.catalog.api import views

app_name = "catalog"

models = views.CatalogModelViewSet
datasets = views.DatasetViewSet
runs = views.TrainingRunViewSet
evaluations = views.EvaluationViewSet

urlpatterns = [
    path("models/", models.as_view({"get": "list", "post": "create"}), name="model-list"),
    path(
        "models/<slug:slug>/",
        models.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"}),
        name="model-detail",
    ),
    path(
        "models/<slug:slug>/versions/",
        models.as_view({"get": "versions", "post": "create_version"}),
        name="model-versions",
    ),
    path(
        "models/<slug:slug>/versions/<str:version>/",
        models.as_view({"get": "version", "patch": "update_version"}),
        name="model-version",
    ),
    path(
        "models/<slug:slug>/lineage/",
        models.as_view({"get": "lineage", "post": "add_edge"}),
        name="model-lineage",
    ),
    path("models/<slug:slug>/compare/", models.as_view({"get": "compare"}), name="model-compare"),
    path("models/<slug:slug>/compliance/", models.as_view({"get": "compliance"}), name="model-compliance"),
    path("datasets/", datasets.as_view({"get": "list", "post": "create"}), name="dataset-list"),
    path(
        "datasets/<str:ref>/",
        datasets.as_view({"get": "retrieve", "patch": "partial_update"}),
        name="dataset-detail",
    ),
    path("training-runs/", runs.as_view({"get": "list", "post": "create"}), name="training-run-list"),
    path("training-runs/<uuid:pk>/", runs.as_view({"get": "retrieve"}), name="training-run-detail"),
    path("evaluations/", evaluations.as_view({"get": "list", "post": "create"}), name="evaluation-list"),
    path(
        "evaluations/<uuid:pk>/",
        evaluations.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"}),
        name="evaluation-detail",
    ),
    path("leaderboard/", views.LeaderboardViewSet.as_view({"get": "list"}), name="leaderboard"),
]
