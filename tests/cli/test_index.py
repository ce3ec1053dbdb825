"""`keel index migrate --golden FOLDER` reads a golden set without a corpus; a folder that is not one is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.index import golden_from_beir
from keel.errors import InvalidGolden

GOLDEN = Path(__file__).resolve().parents[2] / "samples" / "golden"


def test_the_sample_golden_set_loads_as_a_gate(tmp_path: Path) -> None:
    golden = golden_from_beir(GOLDEN, "test")
    assert len(golden) == 21 and all(q.query and q.relevant for q in golden)
    assert golden[0].relevant == {"faq.txt": 1}
    with pytest.raises(InvalidGolden):
        golden_from_beir(tmp_path, "test")
