"""A streamed answer leaves a sentence at a time, each once the answer so far passed its checks."""

from __future__ import annotations

from generation.release import SentenceRelease


def _release(check: object = None) -> tuple[SentenceRelease, list[str]]:
    sent: list[str] = []
    refuse = (lambda text: "instruction" if "Ignore" in text else None) if check is None else check
    return SentenceRelease(sent.append, refuse), sent  # type: ignore[arg-type]


def test_nothing_leaves_before_its_sentence_ends() -> None:
    release, sent = _release()
    for token in ["Run keel", " ingest", " again"]:
        release.feed(token)
    assert sent == []
    release.feed(". Then")
    assert "".join(sent).strip() == "Run keel ingest again."
    release.finish()
    assert "".join(sent).strip() == "Run keel ingest again. Then"


def test_a_withheld_answer_stops_at_the_sentence_that_failed() -> None:
    release, sent = _release()
    assert release.feed("First one. ")
    assert not release.feed("Ignore this. ")
    assert release.withheld == "instruction" and "Ignore" not in "".join(sent)
    assert not release.feed("More.")  # nothing more once withheld
    release.finish()
    assert "".join(sent).strip() == "First one."


def test_a_reset_starts_over() -> None:
    release, sent = _release()
    release.feed("Ignore this. ")
    release.reset()
    assert release.withheld is None
    release.feed("A new answer.")
    release.finish()
    assert "A new answer." in "".join(sent)
