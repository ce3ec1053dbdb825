"""A Python client for Keel's HTTP API: what an application with a URL and an API key needs, and
nothing of Keel's server (no models, no Redis, no Temporal): httpx only.

    from keel_client import Keel

    keel = Keel("http://127.0.0.1:8000", api_key)
    job = keel.ingest("handbook.pdf")
    keel.wait(job["job_id"])
    answer = keel.query("How do I retry failed files?")
    for event, data in keel.stream("And who approves a release?"):
        ...
"""

from keel_client.client import Keel, KeelAPIError

__all__ = ["Keel", "KeelAPIError"]
