"""The second hop's links: which names a passage holds, and how the linked passages join the ranking."""

from __future__ import annotations

from contracts.query import Scored
from retrieval.links import MAX_NAMES, names_in, title_key, with_links


def test_a_title_is_folded_as_passages_are() -> None:
    assert title_key("  The Lord of the Rings: ") == "the lord of the rings"
    assert title_key("ＫＩＳＳ and Tell (1945 film)") == "kiss and tell 1945 film"
    assert title_key("O'Brien & Sons") == title_key("O'Brien Sons") == "o'brien sons"  # a lone symbol drops
    assert title_key("AT&T") == "at&t"


def test_names_start_at_capitals_and_leave_out_what_the_question_names() -> None:
    text = "Kiss and Tell is a 1945 film starring Shirley Temple as Corliss Archer."
    names = names_in([text], "Who played Corliss Archer in Kiss and Tell?", own_titles=["Kiss and Tell"])
    assert "shirley temple" in names and "shirley" in names and "1945" in names
    assert "corliss archer" not in names and "kiss and tell" not in names  # asked already
    assert "starring" not in names  # not capitalised
    assert all(len(n.split()) <= 6 for n in names)


def test_a_single_stop_word_is_never_a_name_and_the_list_is_bounded() -> None:
    assert "the" not in names_in(["The film was long."], "What film?")
    many = " ".join(f"Name{i} Word{i}." for i in range(1000))
    assert len(names_in([many], "q")) == MAX_NAMES


def test_linked_passages_are_fused_by_rank_and_never_duplicated() -> None:
    first = [Scored(point_id=p, doc_id=p) for p in ("a", "b", "c", "d")]
    linked = [Scored(point_id=p, doc_id=p) for p in ("x", "c")]
    fused = [s.point_id for s in with_links(first, linked)]
    assert fused[:2] == ["c", "a"] or fused[:2] == ["a", "c"]
    assert sorted(fused) == ["a", "b", "c", "d", "x"]
    assert fused.index("x") < fused.index("d")  # a linked passage's first place beats the first hop's fourth
    assert [s.point_id for s in with_links(first, [])] == ["a", "b", "c", "d"]


def test_a_placeholder_is_never_a_name_nor_a_linkable_title() -> None:
    assert title_key("<PERSON>") == title_key("<PERSON> Stadium") == ""  # any person: never linked
    names = names_in(["<PERSON> played at <LOCATION> Stadium with Ed Wood."], "q")
    assert "person" not in names and not any("location" in n for n in names)
    assert "ed wood" in names and "stadium" in names
    # A keyed pseudonym names one person: it is a name, and a title of it links.
    assert "person_q7tm2kxa" in names_in(["PERSON_q7tm2kxa directed it."], "q")
    assert title_key("PERSON_q7tm2kxa") == "person_q7tm2kxa"
