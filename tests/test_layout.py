"""The rooms of the tree and what each may import: an arrow that runs upwards fails here.

The same table is the README's layout section. A room may always import itself and anything
outside Keel; an import of another room must be listed for it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

BASE = {"keel"}
ALLOWED: dict[str, set[str]] = {
    "keel": set(),  # the kernel: settings, errors, ids, tenancy, offline
    "keel_client": set(),  # the HTTP client: nothing of the server
    "contracts": BASE,
    "conversations": BASE | {"contracts"},  # follow-ups made standalone: pure functions of the turns
    "encoders": BASE,
    "observability": BASE,
    "guardrails": BASE,  # detectors over text: nothing below them but the kernel
    "vectorstore": BASE | {"encoders"},
    "stores": BASE | {"contracts"},
    "ingestion": BASE | {"encoders", "guardrails"},  # guardrails: PII detection, shared with the edge
    "index": BASE | {"contracts", "encoders", "stores", "vectorstore"},
    "temporal": BASE | {"observability", "stores"},  # stores: the tenants' data keys
    "gateway": BASE | {"observability", "stores"},
    "retrieval": BASE | {"contracts", "encoders", "index", "stores", "vectorstore"},
    "caches": BASE | {"contracts", "encoders", "index", "stores", "vectorstore"},
    "generation": BASE | {"contracts", "conversations", "guardrails", "observability", "stores"},
    "pipelines": BASE
    | {
        "caches",
        "contracts",
        "conversations",
        "encoders",
        "generation",
        "guardrails",
        "ingestion",
        "index",
        "retrieval",
        "stores",
        "vectorstore",
    },
    "activities": BASE
    | {"caches", "contracts", "generation", "index", "ingestion", "observability", "pipelines", "retrieval", "stores"},
    "workflows": BASE | {"contracts", "activities", "conversations"},
    "app": BASE
    | {
        "caches",
        "contracts",
        "conversations",
        "gateway",
        "generation",
        "guardrails",
        "index",
        "ingestion",
        "observability",
        "retrieval",
        "stores",
        "temporal",
        "workflows",
    },
    "evaluation": BASE
    | {"app", "contracts", "conversations", "generation", "index", "retrieval", "stores", "temporal"},
}
TOP = {"cli", "api", "infra", "bench"}  # entry points: they may import every room below them
ROOMS = set(ALLOWED) | TOP


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
    return found & ROOMS


@pytest.mark.parametrize("room", sorted(ALLOWED))
def test_rooms_import_only_the_rooms_below_them(room: str) -> None:
    files = sorted((ROOT / room).rglob("*.py"))
    assert files, f"no room {room}/"
    wrong = {
        str(p.relative_to(ROOT)): sorted(_imports(p) - ALLOWED[room] - {room})
        for p in files
        if _imports(p) - ALLOWED[room] - {room}
    }
    assert not wrong, f"upward imports from {room}/: {wrong}"


def test_entry_points_are_imported_by_nothing_below_them() -> None:
    for room in ALLOWED:
        for p in (ROOT / room).rglob("*.py"):
            assert not _imports(p) & TOP, f"{p.relative_to(ROOT)} imports an entry point"


def test_every_package_is_a_known_room() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages == ROOMS, f"rooms without a line in the table: {packages ^ ROOMS}"
