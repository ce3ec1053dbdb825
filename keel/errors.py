"""The exception tree, the whole of it, in one place.

Every failure a user can see has a stable `code`. `retryable` says whether Temporal should try
again (a transient fault) or give up at once (bad input, a missing thing). Activities turn these
into `ApplicationError(type=code, non_retryable=not retryable)` (`activities/errors.py`); the API
turns them into JSON with the same code and `http_status`.

    KeelError                      internal_error (500)
      BadInput                     bad_input (400): never retried
        EmptyFile, FileTooLarge, UnsupportedType, UnsafeName      refused while staging
        CorruptFile, EncryptedFile, NotText, NoContent            refused by the parser
        FileTooSlow                                               parse or redaction past its limit
        InvalidTenant, EmptyQuestion, QuestionTooLong, InvalidSchema, InvalidFilter, JsonInvalid,
        InvalidText, BodyTooLarge
      NotFound                     not_found (404)
        UnknownTenant, ErasedTenant (410), DatasetNotFound, MigrationNotFound
      DependencyUnavailable        dependency_unavailable (503): retried with backoff
        VectorStoreUnavailable, RedisUnavailable, TemporalUnavailable, RetrievalUnavailable,
        LimiterUnavailable
      Overloaded                   overloaded (503): the process is at its query capacity
      RateLimited                  rate_limited (429): a key or tenant over a limit; ExceedsLimit (400)
      Unauthorized                 unauthorized (401): missing_key, invalid_key, revoked_key
      Forbidden                    forbidden (403): role_forbidden, group_not_held, document_forbidden
      WidensAccess                 widens_access (409)
      MigrationConflict            migration_conflict (409): one embedding migration per tenant at a time
      RestoreConflict              restore_conflict (409): the tenant already has data where it is restored
      NothingToRollBack            nothing_to_roll_back (409): no replaced index is retained
      ParserCrashed                parser_crashed (503): a parse/redaction process died; retried
      IndexOutdated                index_outdated (503): a collection laid out by an older Keel
      QueryFailed, RerankTimeout
"""

from __future__ import annotations


class KeelError(Exception):
    """A failure Keel did not foresee (a bug); its request id finds it in the logs."""

    code = "internal_error"
    retryable = False
    http_status = 500
    retry_after_s: float | None = None  # a 429/503's Retry-After, when the error knows better than the default

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# -- Bad input: never retried ------------------------------------------------------------------
class BadInput(KeelError):
    """The request or file is unusable as sent; sending it again will not help."""

    code = "bad_input"
    http_status = 400


class EmptyFile(BadInput):
    """The file has no bytes."""

    code = "empty_file"


class FileTooLarge(BadInput):
    """The file, the upload, or what a compressed file inflates to, is over its limit."""

    code = "file_too_large"
    http_status = 413


class UnsupportedType(BadInput):
    """A file type Keel does not parse (by extension and by its first bytes)."""

    code = "unsupported_type"
    http_status = 415


class CorruptFile(BadInput):
    """The file claims a type its bytes do not hold together as (a broken PDF or DOCX)."""

    code = "corrupt_file"
    http_status = 422


class EncryptedFile(BadInput):
    """A password-protected PDF or DOCX: Keel cannot read it without the password."""

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


class FileTooSlow(BadInput):
    """Parsing or redacting the file ran past its per-file limit: it was stopped, not retried."""

    code = "file_too_slow"
    http_status = 422


class UnsafeName(BadInput):
    """A path that leaves the folder given (a symlink out, `..`) or a name that cannot be stored."""

    code = "unsafe_name"


class InvalidTenant(BadInput):
    """A tenant name outside `[a-z0-9][a-z0-9_-]{0,62}`."""

    code = "invalid_tenant"


class EmptyQuestion(BadInput):
    """The question is empty or only whitespace."""

    code = "empty_question"


class PromptInjection(BadInput):
    """The tenant's policy refuses questions that read as instructions to the model."""

    code = "prompt_injection"  # the tenant's policy refuses questions that read as instructions to the model


class UnsafeContent(BadInput):
    """The tenant's moderation policy refuses the question."""

    code = "unsafe_content"  # the tenant's moderation policy refuses the question


class QuestionTooLong(BadInput):
    """The question is longer than `KEEL_MAX_QUESTION_CHARS`."""

    code = "question_too_long"
    http_status = 413


class InvalidSchema(BadInput):
    """The request's `json_schema` is not a schema Keel will run (too large or deep, a remote `$ref`, a
    regex it cannot run in linear time).
    """

    code = "invalid_json_schema"


class InvalidFilter(BadInput):
    """A metadata filter Keel does not accept."""

    code = "invalid_filter"


class JsonInvalid(BadInput):
    """The answer is not valid JSON for the caller's schema, even after one repair."""

    code = "json_invalid"
    http_status = 422


class InvalidText(BadInput):
    """Text that is not valid Unicode (a lone surrogate), or control characters where none belong."""

    code = "invalid_text"


class UnknownEncoder(BadInput):
    """A migration names an encoder the operator did not configure (KEEL_ENCODERS)."""

    code = "unknown_encoder"


class AlreadyActive(BadInput):
    """A migration to the encoder the tenant already reads."""

    code = "already_active"


class InvalidGolden(BadInput):
    """A migration's golden set that is too large or malformed."""

    code = "invalid_golden"


class BodyTooLarge(BadInput):
    """A request body over its route's limit, refused as it streams in."""

    code = "body_too_large"
    http_status = 413


# -- Identity and access: never retried ------------------------------------------------------
class Unauthorized(KeelError):
    """The request has no usable key."""

    code = "unauthorized"
    http_status = 401


class MissingKey(Unauthorized):
    """No `Authorization: Bearer <key>` header."""

    code = "missing_key"


class InvalidKey(Unauthorized):
    """A key that is malformed or unknown."""

    code = "invalid_key"


class RevokedKey(Unauthorized):
    """A key that was revoked; refused from the next request on."""

    code = "revoked_key"


class Forbidden(KeelError):
    """The key is valid but may not do this."""

    code = "forbidden"
    http_status = 403


class RoleForbidden(Forbidden):
    """The key lacks the role the route needs (`admin`, `ingest`, `query`, `operator`)."""

    code = "role_forbidden"


class GroupNotHeld(Forbidden):
    """A caller asked for (or tried to give a document) an access group its key does not hold."""

    code = "group_not_held"


class DeleteFailed(KeelError):
    """Deleting a document failed part way; running the deletion again finishes it."""

    code = "delete_failed"


class DocumentForbidden(Forbidden):
    """Replacing or deleting a document needs a key that holds every group of the document."""

    code = "document_forbidden"


class WidensAccess(KeelError):
    """A replacement would let readers see the document who could not see it before."""

    code = "widens_access"
    http_status = 409


class MigrationConflict(KeelError):
    """Another embedding migration of the tenant runs, or its replaced index is still retained."""

    code = "migration_conflict"
    http_status = 409


class RestoreConflict(KeelError):
    """A restore into a tenant that already has data here, or a key that belongs to another tenant."""

    code = "restore_conflict"
    http_status = 409


class NothingToRollBack(KeelError):
    """A rollback with no replaced index retained."""

    code = "nothing_to_roll_back"
    http_status = 409


# -- Not found ---------------------------------------------------------------------------------
class NotFound(KeelError):
    """What was asked for does not exist, or the key may not see it."""

    code = "not_found"
    http_status = 404


class DocumentNotFound(NotFound):
    """No document of this id that the key may read (one it may not read reads the same)."""

    code = "document_not_found"


class ConversationNotFound(NotFound):
    """No live conversation of this id belongs to the caller (another principal's reads the same)."""

    code = "conversation_not_found"


class ModelNotFound(NotFound):
    """The model a chat completion names is not one of `GET /v1/models`."""

    code = "model_not_found"


class UnknownTenant(NotFound):
    """A tenant that has never ingested a document."""

    code = "unknown_tenant"


class ErasedTenant(NotFound):
    """What was asked for was sealed with a tenant's data key, which its erasure destroyed."""

    code = "tenant_erased"
    http_status = 410


class DatasetNotFound(NotFound):
    """An evaluation dataset folder without the files it needs."""

    code = "dataset_not_found"


class MigrationNotFound(NotFound):
    """No migration of the tenant with that id."""

    code = "migration_not_found"


# -- Dependencies: retried with backoff, then recorded ---------------------------------------
class DependencyUnavailable(KeelError):
    """A service Keel needs (Redis, Qdrant, Temporal) cannot be reached; retried with backoff."""

    code = "dependency_unavailable"
    retryable = True
    http_status = 503


class IndexNotHere(KeelError):
    """This process does not open the index (an API-only process beside the embedded Qdrant):
    reading a document needs one that does, or API processes against a Qdrant server."""

    code = "index_not_here"
    http_status = 501


class EmbeddingsUnavailable(KeelError):
    """This process has no encoder to embed with: an API-only process beside the embedded Qdrant
    (only the worker's process opens the index). Ask a process that shares the workers' indexes,
    or run API processes against a Qdrant server."""

    code = "embeddings_unavailable"
    http_status = 501


class IndexOutdated(KeelError):
    """A collection made before BM25 used the tenant's own statistics: its sparse vectors carry
    Qdrant's collection-wide IDF, which mixes tenants. Not retried: an operator re-ingests."""

    code = "index_outdated"
    http_status = 503  # the service cannot answer from this index until an operator acts; not the caller's fault
    retry_after_s = 300.0

    def __init__(self, collection: str) -> None:
        super().__init__(
            f"collection {collection!r} was built by an earlier Keel (BM25 over every tenant's documents);"
            " ingest into a new collection (KEEL_COLLECTION) or a fresh data directory"
        )


class VectorStoreUnavailable(DependencyUnavailable):
    """Qdrant cannot be reached or answered with an error."""

    code = "vector_store_unavailable"


class RedisUnavailable(DependencyUnavailable):
    """Redis cannot be reached."""

    code = "redis_unavailable"


class TemporalUnavailable(DependencyUnavailable):
    """Temporal cannot be reached."""

    code = "temporal_unavailable"


class LimiterUnavailable(DependencyUnavailable):
    """The rate limiter cannot reach Redis: requests are refused (fail closed) unless configured otherwise."""

    code = "limiter_unavailable"


class RetrievalUnavailable(DependencyUnavailable):
    """Retrieval failed or ran out of time: an answer now would claim nothing matched."""

    code = "retrieval_unavailable"


class Overloaded(KeelError):
    """This process is at its query capacity: refused at once rather than queued into a late answer."""

    code = "overloaded"
    retryable = True
    http_status = 503
    retry_after_s = 1.0


class RateLimited(KeelError):
    """A key or tenant is over one of its limits (gateway.limits): 429 with when to come back."""

    code = "rate_limited"
    retryable = True
    http_status = 429

    def __init__(
        self, message: str, *, retry_after_s: float | None, policy: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.policy = policy
        self.headers = dict(headers or {})


class ExceedsLimit(BadInput):
    """One request asks for more than a limit allows in a whole window: waiting will not help."""

    code = "exceeds_limit"


class ParserCrashed(KeelError):
    """The process parsing or redacting a file died mid-call (out of memory, a native crash)."""

    code = "parser_crashed"
    retryable = True
    http_status = 503


# -- Query steps -------------------------------------------------------------------------------
class QueryFailed(KeelError):
    """The query workflow failed for a reason none of the other codes names."""

    code = "query_failed"


class RerankTimeout(KeelError):
    """The re-scorer passed its deadline; the workflow keeps the retrieval order."""

    code = "rerank_timeout"


class StepTimeout(KeelError):
    """A query step that must finish (retrieval, packing the context) passed its budget inside the
    activity that runs it with others; the workflow answers as it does for that step's timeout."""

    code = "step_timeout"


class HopTimeout(KeelError):
    """The second hop passed its deadline; the workflow keeps the first hop's ranking."""

    code = "hop_timeout"


def _subclasses(cls: type[KeelError]) -> list[type[KeelError]]:
    return [cls, *(s for sub in cls.__subclasses__() for s in _subclasses(sub))]


# Codes that mean "trying again will not help": the batch records them and moves on. Derived
# from the tree, so a new error class cannot be forgotten here.
NON_RETRYABLE_CODES = frozenset(cls.code for cls in _subclasses(KeelError) if not cls.retryable)
# Codes of a dependency every step shares being away: trying the same work another way won't help.
OUTAGE_CODES = frozenset(cls.code for cls in _subclasses(DependencyUnavailable))


def from_code(code: str, message: str) -> KeelError:
    """The error a failed activity reported by its code (a workflow's failure, back at the edge)."""
    cls = next((c for c in _subclasses(KeelError) if c.code == code), KeelError)
    return cls(message)
