"""Shared test helpers and fixtures (registered as plugins by tests/conftest.py)."""
