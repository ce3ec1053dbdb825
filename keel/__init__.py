"""Keel: production-shaped retrieval-augmented generation."""
