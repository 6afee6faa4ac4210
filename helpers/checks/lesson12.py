"""Checks for lesson 12, running it for real."""
