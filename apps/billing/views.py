"""The Stripe webhook (a plain view: the signature covers the raw body, which DRF's parsers would consume)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.billing import payments
from llm_infra_django.errors import AppError
from llm_infra_django.responses import envelope_response

MAX_EVENT_BYTES = 256 * 1024


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    """`POST /api/v1/billing/stripe/webhook/`: 200 once the event is taken (credited, ignored or refused, replays
    included); 400 when its signature does not verify (nothing read, nothing credited); 404 when Stripe is off."""
    try:
        if len(request.body) > MAX_EVENT_BYTES:
            raise AppError("The event is too large.", status_code=413, code="payload_too_large")
        event = payments.verified_event(request.body, request.headers.get("Stripe-Signature"))
        taken = payments.take_event(event)
    except AppError as error:
        return envelope_response(error, request)
    return JsonResponse({"received": True, "event": taken.event_id, "outcome": taken.outcome})
