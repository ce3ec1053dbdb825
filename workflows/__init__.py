"""Workflows orchestrate; they do no I/O, read no clock and import nothing heavy."""
