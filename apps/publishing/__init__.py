"""LLM services, versions, lifecycle, validation pipeline, approval and discovery."""
