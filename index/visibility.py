"""Which points a reader may see: tenant, access groups, and the tenant's index generation.

A document version becomes visible atomically when its tenant's generation is bumped (see
`index.publish.Publisher.publish`). Every read goes through `visible_at`.
"""

from __future__ import annotations

from collections.abc import Sequence

from keel.tenancy import reader_groups
from vectorstore.base import Cond, Where

NEVER = 2**62  # visible_from of staged points, visible_until of live ones


def visible_at(tenant: str, generation: int, groups: Sequence[str]) -> Where:
    return Where(
        must=(
            Cond("tenant", value=tenant),
            Cond("access_groups", any=reader_groups(groups)),
            Cond("visible_from", lte=generation),
            Cond("visible_until", gt=generation),
        )
    )


def document_visible_at(tenant: str, generation: int, groups: Sequence[str], doc_id: str) -> Where:
    """One document's points a reader may see (reading a document: `app.reading`)."""
    return visible_at(tenant, generation, groups).and_(Cond("doc_id", value=doc_id))
