"""Django REST framework integration: the exception handler rendering the error envelope."""

from llm_infra_django.drf.exception_handler import exception_handler

__all__ = ["exception_handler"]
