"""Routes of the tenancy REST API, included under `/api/v1/` (namespace `tenancy`)."""

from django.urls import path

from apps.tenancy.api import views

app_name = "tenancy"

tenant_list = views.TenantViewSet.as_view({"get": "list", "post": "create"})
tenant_detail = views.TenantViewSet.as_view({"get": "retrieve", "patch": "partial_update"})
member_list = views.MemberViewSet.as_view({"get": "list", "post": "create"})
member_detail = views.MemberViewSet.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"})
quota_detail = views.QuotaViewSet.as_view({"get": "retrieve", "put": "update", "delete": "destroy"})
policy_list = views.SharingPolicyViewSet.as_view({"get": "list", "post": "create"})
policy_detail = views.SharingPolicyViewSet.as_view({"get": "retrieve", "patch": "partial_update"})
request_list = views.AccessRequestViewSet.as_view({"get": "list", "post": "create"})

urlpatterns = [
    path("tenants/", tenant_list, name="tenant-list"),
    path("tenants/<slug:slug>/", tenant_detail, name="tenant-detail"),
    path("tenants/<slug:slug>/tier/", views.TenantViewSet.as_view({"post": "change_tier"}), name="tenant-tier"),
    path("tenants/<slug:slug>/suspend/", views.TenantViewSet.as_view({"post": "suspend"}), name="tenant-suspend"),
    path(
        "tenants/<slug:slug>/reactivate/",
        views.TenantViewSet.as_view({"post": "reactivate"}),
        name="tenant-reactivate",
    ),
    path(
        "tenants/<slug:slug>/deactivate/",
        views.TenantViewSet.as_view({"post": "deactivate"}),
        name="tenant-deactivate",
    ),
    path("tenants/<slug:slug>/members/", member_list, name="member-list"),
    path("tenants/<slug:slug>/members/<uuid:member_id>/", member_detail, name="member-detail"),
    path("tenants/<slug:slug>/quotas/", views.QuotaViewSet.as_view({"get": "list"}), name="quota-list"),
    path("tenants/<slug:slug>/quotas/<slug:quota_type>/", quota_detail, name="quota-detail"),
    path("tenants/<slug:slug>/usage/", views.UsageViewSet.as_view({"get": "retrieve"}), name="usage"),
    path("tenants/<slug:slug>/audit-log/", views.AuditLogViewSet.as_view({"get": "list"}), name="audit-log"),
    path("sharing/policies/", policy_list, name="policy-list"),
    path("sharing/policies/<uuid:pk>/", policy_detail, name="policy-detail"),
    path("sharing/requests/", request_list, name="request-list"),
    path(
        "sharing/requests/<uuid:pk>/",
        views.AccessRequestViewSet.as_view({"get": "retrieve"}),
        name="request-detail",
    ),
    path(
        "sharing/requests/<uuid:pk>/approve/",
        views.AccessRequestViewSet.as_view({"post": "approve"}),
        name="request-approve",
    ),
    path(
        "sharing/requests/<uuid:pk>/reject/",
        views.AccessRequestViewSet.as_view({"post": "reject"}),
        name="request-reject",
    ),
    path("sharing/grants/", views.GrantViewSet.as_view({"get": "list"}), name="grant-list"),
    path("sharing/grants/<uuid:pk>/", views.GrantViewSet.as_view({"get": "retrieve"}), name="grant-detail"),
    path("sharing/grants/<uuid:pk>/revoke/", views.GrantViewSet.as_view({"post": "revoke"}), name="grant-revoke"),
]
