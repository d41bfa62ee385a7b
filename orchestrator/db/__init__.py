"""Database: SQLAlchemy models, engine creation and migrations."""
