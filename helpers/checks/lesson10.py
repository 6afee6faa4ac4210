"""Checks for lesson 10, production."""
