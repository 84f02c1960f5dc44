"""Versioned schema migrations, one folder per backend: ``NNNN_description.sql`` files applied
in order, each in its own transaction with its row in ``schema_migrations``."""
