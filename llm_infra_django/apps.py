"""App configuration: registers system checks and configures structlog."""

from django.apps import AppConfig


class LlmInfraConfig(AppConfig):
    name = "llm_infra_django"
    label = "llm_infra"
    verbose_name = "LLM infrastructure"

    def ready(self) -> None:
        from llm_infra_django import checks  # noqa: F401 - registers the system checks
        from llm_infra_django.logging import configure_structlog

        configure_structlog()
