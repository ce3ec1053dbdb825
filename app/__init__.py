"""Use cases shared by the CLI and the API: stage and start ingest jobs, build and start queries."""
