"""Moderation: unsafe content is flagged by category, its severe forms apart; ordinary text that
mentions the same topics in passing is not."""

from __future__ import annotations

import pytest

from guardrails.moderation import SEVERE, shipped


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("I want to kill myself, there is no reason to live anymore.", "self-harm"),
        ("You are a worthless idiot and everyone hates you, go die.", "harassment"),
        ("All immigrants are vermin and should be shot, every last one of them.", "hate"),
    ],
)
def test_unsafe_text_is_flagged_in_its_category(text: str, category: str) -> None:
    assert category in shipped().check(text).flagged, shipped().check(text)


def test_a_threat_against_a_group_is_the_severe_form() -> None:
    found = shipped().check("Death to all muslims, I will kill them and burn their homes.").flagged
    assert "hate/threatening" in found and set(found) & set(SEVERE)


@pytest.mark.parametrize(
    "text",
    [
        "How do I kill a stuck process on Linux without losing data?",
        "The museum's exhibit covers the history of the Second World War in Europe.",
        "Which vaccinations do children need before travelling abroad?",
        "Our refund policy gives customers five business days to report a failed upload.",
    ],
)
def test_ordinary_text_on_nearby_topics_passes(text: str) -> None:
    assert shipped().check(text).flagged == [], shipped().check(text)
