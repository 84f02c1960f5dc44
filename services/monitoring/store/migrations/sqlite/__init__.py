"""SQLite schema migrations."""
