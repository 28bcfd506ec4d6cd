"""Walmart Marketplace (US) store adapter."""
