"""Checks for lesson 11, a REST gateway."""
