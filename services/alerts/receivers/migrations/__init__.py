"""SQLite migrations of the receivers' outbox."""
