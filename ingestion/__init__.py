"""Pure ingestion steps: each takes data in and gives data out, with no Temporal in sight."""
