"""Fixtures for the infra package tests."""
