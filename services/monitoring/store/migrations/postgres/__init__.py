"""PostgreSQL schema migrations."""
