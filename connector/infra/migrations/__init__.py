"""Alembic migration environment for Storelink's schema."""
