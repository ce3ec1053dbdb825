"""The exception tree, documented in one place.

Every failure a user can see has a stable `code`. `retryable` says whether Temporal should try
again (a transient fault) or give up at once (bad input). Activities turn these into
`ApplicationError(type=code, non_retryable=not retryable)` in `activities/errors.py`; the API
turns them into JSON with the same code.
"""

from __future__ import annotations


class KeelError(Exception):
    code = "internal_error"
    retryable = False
    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# -- Bad input: never retried ------------------------------------------------------------------
class BadInput(KeelError):
    code = "bad_input"
    http_status = 400


class EmptyFile(BadInput):
    code = "empty_file"


class FileTooLarge(BadInput):
    code = "file_too_large"
    http_status = 413


class UnsupportedType(BadInput):
    code = "unsupported_type"
    http_status = 415


class CorruptFile(BadInput):
    code = "corrupt_file"
    http_status = 422


class EncryptedFile(BadInput):
    code = "encrypted_file"
    http_status = 422


class NotText(BadInput):
    """Binary bytes behind a text extension, or text in no encoding we can decode."""

    code = "not_text"
    http_status = 422


class NoContent(BadInput):
    """The file parsed, but held no text to index (an image-only PDF, an empty page)."""

    code = "no_content"
    http_status = 422


class UnsafeName(BadInput):
    code = "unsafe_name"


class NotFound(KeelError):
    code = "not_found"
    http_status = 404


# -- Dependencies: retried with backoff, then recorded ---------------------------------------
class DependencyUnavailable(KeelError):
    code = "dependency_unavailable"
    retryable = True
    http_status = 503


class VectorStoreUnavailable(DependencyUnavailable):
    code = "vector_store_unavailable"


class RedisUnavailable(DependencyUnavailable):
    code = "redis_unavailable"


class TemporalUnavailable(DependencyUnavailable):
    code = "temporal_unavailable"


# Codes that mean "this input will never work": the batch records them and moves on.
NON_RETRYABLE_CODES = frozenset(
    cls.code
    for cls in (
        BadInput,
        EmptyFile,
        FileTooLarge,
        UnsupportedType,
        CorruptFile,
        EncryptedFile,
        NotText,
        NoContent,
        UnsafeName,
    )
)
