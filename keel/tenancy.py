"""Tenant and group names, and what groups a reader and a document have.

Names end up in keys, filters and paths, so they are checked once here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from keel.errors import BadInput, InvalidTenant

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
