"""Stage a batch: refuse what is plainly unusable, copy the rest into the blob store.

The manifest (pages of entries in the blob store) is what the batch workflow reads: it carries
keys and hashes, never bytes. From the CLI, a file refused here (too large, unsupported,
unreadable, a symlink out of the tree) is still an entry, with its error, so the job records every
file it was given; an upload over HTTP is refused at once instead, with the same codes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from contracts.batch import ManifestEntry
from ingestion.files import check_name, classify
from keel.errors import BadInput, KeelError, UnsafeName
from keel.ids import document_id, sha256_bytes
from stores.blobs import BlobStore, manifest_page_key, raw_key

PAGE_SIZE = 200
MAX_SOURCE_CHARS = 1024


@dataclass(frozen=True, kw_only=True)
class StagedBatch:
    job_id: str
    pages: int
    total: int
    refused: int


def iter_files(paths: Sequence[Path]) -> Iterator[tuple[Path, KeelError | None]]:
    """Files under the given paths in a stable order; hidden files and folders are skipped.

    Each file is named as it was given (`docs/a.md` for `keel ingest docs`), never resolved to an
    absolute path: the name is the document's source, which citations and job records show.
    """
    for given in paths:
        if given.is_dir():
            root = given.resolve()
            for dirpath, dirnames, filenames in os.walk(given, followlinks=False):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    if name.startswith("."):
                        continue
                    path = Path(dirpath) / name
                    if path.is_symlink() and not path.resolve().is_relative_to(root):
                        yield path, UnsafeName(f"{path} is a symlink to a file outside {given}")
                        continue
                    yield path, None
        else:
            yield given, None


def stage_paths(paths: Sequence[Path], tenant: str, job_id: str, blobs: BlobStore, max_bytes: int) -> StagedBatch:
    page: list[ManifestEntry] = []
    pages = total = refused = 0

    def flush() -> None:
        nonlocal page, pages
        if page:
            write_manifest_page(blobs, job_id, pages, page)
            pages += 1
            page = []

    for path, problem in iter_files(paths):
        entry = _stage_file(path, problem, tenant, blobs, max_bytes)
        refused += entry.error_code is not None
        page.append(entry)
        total += 1
        if len(page) >= PAGE_SIZE:
            flush()
    flush()
    return StagedBatch(job_id=job_id, pages=pages, total=total, refused=refused)


def stage_upload(
    blobs: BlobStore, tenant: str, job_id: str, *, filename: str, source: str | None, data: bytes, max_bytes: int
) -> StagedBatch:
    """One uploaded file as a batch of one; refused (raises) rather than recorded when unusable."""
    name = check_name(filename)
    classify(name, len(data), max_bytes)  # empty, too large, unsupported: refused now
    doc_source = (source or name).strip()
    if not doc_source or len(doc_source) > MAX_SOURCE_CHARS or not doc_source.isprintable():
        raise BadInput(f"source must be 1-{MAX_SOURCE_CHARS} printable characters")
    entry = ManifestEntry(source=doc_source, filename=name)
    _store_raw(blobs, tenant, entry, data)
    write_manifest_page(blobs, job_id, 0, [entry])
    return StagedBatch(job_id=job_id, pages=1, total=1, refused=0)


def write_manifest_page(blobs: BlobStore, job_id: str, page: int, entries: Sequence[ManifestEntry]) -> None:
    blobs.put_json(manifest_page_key(job_id, page), [asdict(e) for e in entries])


def _store_raw(blobs: BlobStore, tenant: str, entry: ManifestEntry, data: bytes) -> None:
    """The bytes under their hash (written once: the same bytes staged twice share one blob)."""
    entry.version = sha256_bytes(data)
    entry.size = len(data)
    entry.blob_key = raw_key(tenant, entry.version, document_id(tenant, entry.source))
    if not blobs.exists(entry.blob_key):
        blobs.put(entry.blob_key, data)


def _stage_file(path: Path, problem: KeelError | None, tenant: str, blobs: BlobStore, max_bytes: int) -> ManifestEntry:
    entry = ManifestEntry(source=str(path), filename=path.name)
    try:
        if problem is not None:
            raise problem
        check_name(path.name)
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist")
        classify(path.name, path.stat().st_size, max_bytes)
        _store_raw(blobs, tenant, entry, path.read_bytes())
    except KeelError as exc:
        entry.error_code, entry.error_message = exc.code, exc.message
    except OSError as exc:
        entry.error_code, entry.error_message = "unreadable", f"cannot read {path}: {exc.strerror or 'I/O error'}"
    return entry
