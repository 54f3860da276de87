"""Billing REST API: the caller's tenant's balance."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from apps.billing import selectors
from apps.billing.api.serializers import BalanceSerializer
from apps.consumption.api.views import TENANT_HEADER_PARAMETER, ConsumptionViewSet, errors


class BalanceViewSet(ConsumptionViewSet):
    """The tenant's prepaid balance: for its members, or a key with `read`."""

    serializer_class = BalanceSerializer

    @extend_schema(
        tags=["billing"],
        summary="The tenant's balance",
        description="Credits (grants and payments) less what the tenant's recorded calls cost. A prepaid tenant's "
        "calls are admitted only while their reservation fits what is left (402 `insufficient_balance` otherwise).",
        parameters=[TENANT_HEADER_PARAMETER],
        responses={
            200: OpenApiResponse(
                BalanceSerializer,
                examples=[
                    OpenApiExample(
                        "Prepaid",
                        value={
                            "tenant": "globex",
                            "prepaid": True,
                            "currency": "USD",
                            "credited": "25",
                            "billed": "3.0125",
                            "balance": "21.9875",
                        },
                        response_only=True,
                    )
                ],
            ),
            **errors(401, 403),
        },
    )
    def retrieve(self, request: Request) -> Response:
        return Response(self.output(selectors.balance(self.get_tenant()), BalanceSerializer))
