"""URLs of the uvicorn test servers: health checks and one DRF view behind a token bucket throttle."""

import os
from typing import Any

from django.urls import include, path
from rest_framework.response import Response
from rest_framework.views import APIView

from llm_infra_django.ratelimit.throttles import TokenBucketThrottle


class BurstThrottle(TokenBucketThrottle):
    scope = os.environ["RATELIMIT_TEST_SCOPE"]


class BurstView(APIView):
    throttle_classes = [BurstThrottle]

    def get(self, request: Any) -> Response:
        return Response({"ok": True})


urlpatterns = [
    path("", include("llm_infra_django.urls")),
    path("burst", BurstView.as_view()),
]
