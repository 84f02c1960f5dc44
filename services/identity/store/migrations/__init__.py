"""Versioned SQL migrations of the identity store, one folder per backend."""
