"""IngestDocumentWorkflow and its activities: one dataclass in and one out per step.

They carry keys and small facts, never file bytes, element lists or vectors (those live in the
blob store), so histories stay small and replay stays fast. New fields get defaults so running
workflows keep decoding old payloads; every field is keyword-only, so a new one cannot shift the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from contracts.batch import FileOutcome

# The ingest pipeline's order, written once. The workflow's step-by-step path (a large document),
# the one-stage and group paths (`pipelines.ingest.IngestSteps.prepare`) and the ingest
# benchmark's clock all follow it.
PREPARE_STEPS = ("parse", "chunk", "redact", "dedupe")  # every step before the model
STORE_STEPS = ("embed", "upsert")  # the model, then the points written invisible
INGEST_STEPS = (*PREPARE_STEPS, *STORE_STEPS, "publish")


@dataclass(kw_only=True)
class DocumentRef:
    tenant: str
    groups: list[str]
    source: str  # the logical document: an absolute path, or the upload's name
    filename: str  # display name; its extension picks the parser
    version: str  # sha256 of the bytes
    blob_key: str
    size: int
    # The groups of the principal that asked for this ingest; None: a trusted operator (older
    # histories, evaluation). A replacement must be allowed for them (keel.tenancy.check_replacement).
    writer_groups: list[str] | None = None


# -- document workflow -------------------------------------------------------------------------
@dataclass(kw_only=True)
class IngestDocumentInput:
    doc: DocumentRef
    # Runs whose work on this document counts as this run's: a group that failed as a whole after
    # publishing some of its documents or claiming them (`workflows.ingest_batch`).
    adopt_runs: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class IngestDocumentOutput:
    doc_id: str
    version: str
    status: str  # ingested | unchanged
    chunks: int = 0
    duplicates: int = 0
    pii: dict[str, int] = field(default_factory=dict)
    generation: int = 0


@dataclass(kw_only=True)
class BeginInput:
    doc: DocumentRef
    adopt_runs: list[str] = field(default_factory=list)  # see IngestDocumentInput


@dataclass(kw_only=True)
class BeginOutput:
    doc_id: str
    unchanged: bool
    # This very run published the version already: a crash lost the record of that, and the
    # re-run begin (local activities run again on replay) hands back the run's own outcome.
    published_here: IngestDocumentOutput | None = None
    # Another run is ingesting the same bytes right now (`unchanged` is set too, so runs of
    # IngestDocument recorded before this field end the same way).
    busy: bool = False


@dataclass(kw_only=True)
class ParseInput:
    doc: DocumentRef


@dataclass(kw_only=True)
class ParseOutput:
    elements_key: str
    elements: int
    title: str
    encoding: str | None = None


@dataclass(kw_only=True)
class ChunkInput:
    doc: DocumentRef
    elements_key: str


@dataclass(kw_only=True)
class ChunkOutput:
    chunks_key: str
    chunks: int
    tokens: int


@dataclass(kw_only=True)
class RedactInput:
    doc: DocumentRef
    chunks_key: str
    title: str


@dataclass(kw_only=True)
class RedactOutput:
    chunks_key: str
    title: str  # redacted too: titles carry names
    pii: dict[str, int] = field(default_factory=dict)


@dataclass(kw_only=True)
class DedupeInput:
    doc: DocumentRef
    doc_id: str
    chunks_key: str


@dataclass(kw_only=True)
class DedupeOutput:
    chunks_key: str
    kept: int
    duplicates: int


@dataclass(kw_only=True)
class EmbedInput:
    doc: DocumentRef
    chunks_key: str
    title: str


@dataclass(kw_only=True)
class EmbedOutput:
    vectors_key: str
    count: int
    embedding_version: str


@dataclass(kw_only=True)
class UpsertInput:
    doc: DocumentRef
    doc_id: str
    chunks_key: str
    vectors_key: str
    title: str
    embedding_version: str = ""  # the vectors' (EmbedOutput); "" in histories from before it was sent


@dataclass(kw_only=True)
class UpsertOutput:
    points: int


@dataclass(kw_only=True)
class StageInput:
    doc: DocumentRef
    doc_id: str


@dataclass(kw_only=True)
class StageOutput:
    """A document's points written (invisible) and what its record will say once published."""

    title: str
    chunks: int  # kept after dedupe
    duplicates: int
    embedding_version: str
    pii: dict[str, int] = field(default_factory=dict)
    encoding: str | None = None


@dataclass(kw_only=True)
class PublishInput:
    doc: DocumentRef
    doc_id: str
    title: str
    chunks: int
    duplicates: int
    embedding_version: str
    pii: dict[str, int] = field(default_factory=dict)
    encoding: str | None = None


@dataclass(kw_only=True)
class PublishOutput:
    generation: int
    already_published: bool = False


@dataclass(kw_only=True)
class DiscardInput:
    doc: DocumentRef
    doc_id: str


@dataclass(kw_only=True)
class DiscardOutput:
    removed: int  # staged points and files


# -- group workflow: several small documents at once (IngestGroupWorkflow) -----------------------
@dataclass(kw_only=True)
class IngestGroupInput:
    docs: list[DocumentRef]  # one tenant's, each small (workflows.policies.is_small)


@dataclass(kw_only=True)
class GroupMember:
    doc: DocumentRef
    doc_id: str


@dataclass(kw_only=True)
class GroupInput:
    members: list[GroupMember]


@dataclass(kw_only=True)
class BeginGroupOutput:
    members: list[GroupMember]  # begun: to stage
    settled: list[FileOutcome]  # ended at begin: unchanged, being ingested by another run, or refused


@dataclass(kw_only=True)
class StagedMember:
    doc: DocumentRef
    doc_id: str
    staged: StageOutput


@dataclass(kw_only=True)
class StageGroupOutput:
    staged: list[StagedMember]
    failed: list[FileOutcome]  # failed for good, and cleaned up


@dataclass(kw_only=True)
class PublishGroupInput:
    staged: list[StagedMember]


@dataclass(kw_only=True)
class IngestGroupOutput:
    outcomes: list[FileOutcome]  # one per document of the input
