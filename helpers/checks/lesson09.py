"""Checks for lesson 09, TLS, mTLS and auth."""
