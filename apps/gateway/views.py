"""The `/graphql` endpoint: API-key or session auth, rate limit, size/depth/cost limits before execution, errors
without internals, responses never cached across users."""

from __future__ import annotations

import re
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import render
from graphene_django.views import GraphQLView, HttpError
from graphql import ExecutionResult, GraphQLError, get_operation_ast, parse
from graphql.validation import NoSchemaIntrospectionCustomRule, specified_rules

from apps.gateway.conf import gateway_settings
from apps.gateway.limits import measure, violations
from llm_infra_django.conf import infra_settings
from llm_infra_django.errors import AppError, AuthorizationError, RateLimitError
from llm_infra_django.logging import logger as infra_logger
from llm_infra_django.ratelimit.identity import caller_identity, ip_identity
from llm_infra_django.ratelimit.limiter import limiter, make_key

# graphql-core's hint naming schema names close to a mistyped one (fields, arguments, types, input fields, enum
# values): with introspection off, the schema must not be discoverable one typo at a time.
SUGGESTION = re.compile(r" ?Did you mean [^?]*\?")


def _is_mutation(document: Any, operation_name: str | None) -> bool:
    operation = get_operation_ast(document, operation_name)
    return operation is not None and operation.operation.value == "mutation"


class GatewayView(GraphQLView):
    """graphene-django's view with the marketplace's authentication and limits."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            self._authenticate(request)
            self._check_csrf(request)
            self._throttle(request)
        except AppError as error:
            response = JsonResponse(
                {"errors": [{"message": error.message, "extensions": {"code": error.code}}]}, status=error.status_code
            )
            for name, value in error.headers().items():
                response[name] = value
            return response
        if self._explains_graphiql_off(request):
            endpoint = request.build_absolute_uri(request.path)
            response = render(request, "gateway/graphiql_off.html", {"endpoint": endpoint})
        else:
            response = super().dispatch(request, *args, **kwargs)
        response["Cache-Control"] = "no-store, private"
        response["Vary"] = "Accept, Authorization, Cookie"  # a browser gets a page, an API client JSON
        return response

    def _explains_graphiql_off(self, request: HttpRequest) -> bool:
        """A browser's GET without a query that GraphiQL would answer if it were on (else graphene-django's bare
        400 "Must provide query string." is all a person sees)."""
        return not self.graphiql and "query" not in request.GET and self.can_display_graphiql(request, {})

    @staticmethod
    def _authenticate(request: HttpRequest) -> None:
        """A `Bearer mk_...` key authenticates as its tenant (request.auth); else the session user, if any."""
        header = request.headers.get("Authorization", "")
        request.auth = None  # type: ignore[attr-defined]
        if header.lower().startswith("bearer "):
            from apps.consumption.authentication import authenticate_key

            # 401 for a bad, expired, unknown or revoked key; 403 without a management scope or a person behind it.
            request.user, request.auth = authenticate_key(header, writing=False)  # type: ignore[attr-defined]
        elif not getattr(request, "user", None):
            request.user = AnonymousUser()

    @staticmethod
    def _check_csrf(request: HttpRequest) -> None:
        """A signed-in browser session must send the CSRF token with a POST (as DRF's session authentication
        requires); an API key needs none (it is not sent by browsers on their own)."""
        if request.method in ("GET", "HEAD", "OPTIONS") or getattr(request, "auth", None) is not None:
            return
        if not getattr(request.user, "is_authenticated", False):
            return
        check = CsrfViewMiddleware(lambda _request: HttpResponse())
        check.process_request(request)
        refused = check.process_view(request, lambda _request: HttpResponse(), (), {})
        if refused is not None:
            raise AuthorizationError(
                "CSRF check failed: send the csrftoken cookie's value in the X-CSRFToken header.", code="csrf_failed"
            )

    @staticmethod
    def _throttle(request: HttpRequest) -> None:
        """Signed-in callers per API key or user (`THROTTLE_SCOPE`), anonymous ones per client IP as the trusted
        proxies report it (`ANON_THROTTLE_SCOPE`); a scope without a rate does not limit."""
        caller = caller_identity(request)
        scope = gateway_settings.THROTTLE_SCOPE if caller else gateway_settings.ANON_THROTTLE_SCOPE
        identity = caller or ip_identity(request)
        rate = (infra_settings.THROTTLE_RATES or {}).get(scope)
        if not rate or identity is None:
            return
        decision = limiter.hit(make_key(scope, identity), rate)
        if not decision.allowed:
            raise RateLimitError(retry_after=decision.retry_after)

    @property
    def graphiql(self) -> bool:  # type: ignore[override]
        """`MARKETPLACE_GATEWAY["GRAPHIQL"]`, read per request (development only; off by default)."""
        return bool(gateway_settings.GRAPHIQL)

    @graphiql.setter
    def graphiql(self, value: bool) -> None:
        pass

    @classmethod
    def can_display_graphiql(cls, request: HttpRequest, data: Any) -> bool:
        """Only a browser's GET (preferring text/html, without `raw`) gets the page; API clients never do."""
        return request.method == "GET" and super().can_display_graphiql(request, data)

    @property
    def validation_rules(self) -> Any:  # type: ignore[override]
        if gateway_settings.INTROSPECTION:
            return None
        return (*specified_rules, NoSchemaIntrospectionCustomRule)

    @validation_rules.setter
    def validation_rules(self, value: Any) -> None:
        pass

    def execute_graphql_request(
        self,
        request: HttpRequest,
        data: Any,
        query: str | None,
        variables: Any,
        operation_name: str | None,
        show_graphiql: bool = False,
    ) -> Any:
        if query and len(query.encode()) > gateway_settings.MAX_QUERY_BYTES:
            return ExecutionResult(
                errors=[
                    GraphQLError(
                        f"Query size {len(query.encode())} bytes exceeds the limit of "
                        f"{gateway_settings.MAX_QUERY_BYTES}.",
                        extensions={"code": "query_too_large"},
                    )
                ]
            )
        if query:
            try:
                document = parse(query)
            except GraphQLError as error:
                return ExecutionResult(errors=[error])
            key = getattr(request, "auth", None)
            if key is not None and _is_mutation(document, operation_name):
                from apps.consumption.models import Scope

                if not key.has_scope(Scope.PUBLISH):  # publish or admin
                    return ExecutionResult(
                        errors=[
                            GraphQLError(
                                "This API key cannot run mutations: it needs the publish or admin scope.",
                                extensions={"code": "insufficient_scope"},
                            )
                        ]
                    )
            found = violations(measure(self.schema.graphql_schema, document, variables, operation_name))
            if found:
                return ExecutionResult(
                    errors=[GraphQLError(message, extensions={"code": "query_limit"}) for message in found]
                )
        return super().execute_graphql_request(request, data, query, variables, operation_name, show_graphiql)

    @staticmethod
    def format_error(error: Any) -> dict[str, Any]:
        """GraphQL errors as GraphQL says; HTTP-level refusals (no query, a body too large, a method not allowed)
        as their message; anything else (a bug) without internals, logged with its stack."""
        if isinstance(error, HttpError):
            status = error.response.status_code
            code = {405: "method_not_allowed"}.get(status, "bad_request")
            return {"message": str(error.message), "extensions": {"code": code}}
        if isinstance(error, GraphQLError):
            original = error.original_error
            if original is None or isinstance(original, (GraphQLError, AppError)):
                formatted = error.formatted
                if isinstance(original, AppError):
                    formatted["message"] = original.message
                    formatted["extensions"] = {"code": original.code, **(formatted.get("extensions") or {})}
                elif not gateway_settings.INTROSPECTION:
                    formatted["message"] = SUGGESTION.sub("", formatted["message"])
                return formatted
            infra_logger.error("graphql_unhandled_exception", exc_info=original)
            return {
                "message": "An internal error occurred.",
                "path": error.path,
                "extensions": {"code": "internal_error"},
            }
        infra_logger.error("graphql_unhandled_exception", exc_info=error)
        return {"message": "An internal error occurred.", "extensions": {"code": "internal_error"}}
