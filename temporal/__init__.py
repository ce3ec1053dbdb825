"""Temporal plumbing: the client, the data converter every client, worker and replayer uses."""
