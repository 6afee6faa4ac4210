"""Checks for lesson 08, interceptors and metadata."""
