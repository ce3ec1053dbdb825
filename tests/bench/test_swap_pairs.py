"""The near misses built for the semantic cache's guard: real swaps of roles, never of a coordinated pair."""

from __future__ import annotations

from bench.swap_pairs import build


def test_a_duplicate_yields_a_role_swap_and_keeps_its_paraphrase() -> None:
    pairs = [
        {"q1": "How do I convert a PDF to Word?", "q2": "How can I turn a PDF into Word?", "label": 1, "id": "a"},
        {"q1": "Which is better?", "q2": "What is best?", "label": 0, "id": "b"},  # not a duplicate: unused
    ]
    built = build(pairs, limit=0)
    near = [p for p in built if p["label"] == 0]
    kept = [p for p in built if p["label"] == 1]
    assert [p["q2"] for p in near] == ["How do I convert a Word to PDF?"]
    assert kept == [
        {
            "q1": "How can I turn a PDF into Word?",
            "q2": "How do I convert a PDF to Word?",
            "label": 1,
            "source": "qqp",
            "id": "a",
        }
    ]


def test_coordinated_nouns_are_not_swapped_and_a_direction_is_flipped_instead() -> None:
    pairs = [{"q1": "Do cats and dogs sleep more?", "q2": "Do dogs and cats sleep longer?", "label": 1, "id": "c"}]
    near = [p for p in build(pairs, limit=0) if p["label"] == 0]
    assert [p["q2"] for p in near] == ["Do cats and dogs sleep less?"]
    assert near[0]["source"] == "swapped-flip"
