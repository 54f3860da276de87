"""Reusable infrastructure for Django projects: settings, logging, tracing, errors, cache, retry, breakers, limits."""

__version__ = "0.1.0"
