"""Tracing (and, later, metrics): one trace from the HTTP request through every activity."""
