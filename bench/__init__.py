"""Benchmarks: each prints the figure its issue asks for, as its last line."""
