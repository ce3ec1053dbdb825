"""Redis and blob state: every Redis key (keys.py), jobs, query state, streams, blobs."""
