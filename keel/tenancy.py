"""Tenant and group names, and what groups a reader and a document have.

Names end up in keys, filters and paths, so they are checked once here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from keel.errors import BadInput, DocumentForbidden, InvalidTenant, WidensAccess

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
EVERYONE = "all"  # the access group of documents ingested without groups; every reader has it


def check_tenant(tenant: str) -> str:
    if not _NAME.match(tenant or ""):
        raise InvalidTenant(f"tenant {tenant!r} must be 1-63 characters of a-z, 0-9, '-' or '_'")
    return tenant


def check_groups(groups: Sequence[str]) -> list[str]:
    bad = [g for g in groups if not _NAME.match(g)]
    if bad:
        raise BadInput(f"access groups {bad} must be 1-63 characters of a-z, 0-9, '-' or '_'")
    return sorted(set(groups))


def reader_groups(groups: Sequence[str]) -> tuple[str, ...]:
    return tuple(sorted({*groups, EVERYONE}))


def document_groups(groups: Sequence[str]) -> list[str]:
    return sorted(set(groups)) or [EVERYONE]


def holds(writer_groups: Sequence[str], doc_groups: Sequence[str]) -> bool:
    """Does a principal with `writer_groups` hold every group of a document (every reader holds `all`)?"""
    return set(doc_groups) <= {*writer_groups, EVERYONE}


def check_replacement(old_groups: Sequence[str], new_groups: Sequence[str], writer_groups: Sequence[str]) -> None:
    """May this writer replace a document readable by `old_groups` with one readable by `new_groups`?

    The writer must hold every old group (or it could overwrite what it cannot read), and the new
    version may not reach readers the old one did not (a replacement never widens access).
    """
    if not holds(writer_groups, old_groups):
        raise DocumentForbidden(
            f"the document is restricted to groups {sorted(old_groups)}; the key does not hold all of them"
        )
    if EVERYONE not in old_groups and not set(new_groups) <= set(old_groups):
        raise WidensAccess(
            f"the replacement would be readable by groups {sorted(set(new_groups) - set(old_groups))} that cannot read "
            "the current version; delete the document first, or ingest it under another source"
        )
