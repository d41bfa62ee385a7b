"""Alembic migrations of the Atelier schema."""
