"""Every Redis key Keel writes, in one place, each carrying the tenant where it is tenant data."""

from __future__ import annotations


def doc_key(tenant: str, doc_id: str) -> str:
    """Hash: the document's published version, in-flight version, title, counts."""
    return f"keel:doc:{tenant}:{doc_id}"


def tenant_docs_key(tenant: str) -> str:
    """Set of the tenant's document ids."""
    return f"keel:docs:{tenant}"


def generation_key(tenant: str) -> str:
    """Integer: the tenant's index generation; readers see points visible at this generation."""
    return f"keel:gen:{tenant}"


def publish_lock_key(tenant: str) -> str:
    return f"keel:lock:publish:{tenant}"


def job_key(job_id: str) -> str:
    return f"keel:job:{job_id}"


def job_files_key(job_id: str) -> str:
    """Hash: path -> outcome JSON for each file of a job."""
    return f"keel:job:{job_id}:files"


JOBS_INDEX = "keel:jobs"  # sorted set of job ids by creation time
