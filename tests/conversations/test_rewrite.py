"""Follow-ups made standalone from the turns before them, without a model."""

from __future__ import annotations

from conversations.rewrite import SEARCH_WORDS, Exchange, names, rewrite, subjects

BERRY = [
    Exchange(question="when did Berry die?", answer="Jan Berry died on March 26, 2004, in Los Angeles."),
    Exchange(question="what did he die of?", answer="He suffered a seizure eight days before his birthday. [2]"),
]


def test_a_first_question_is_its_own_search() -> None:
    first = rewrite("  Who approved the Q3 budget? ", [])
    assert (first.question, first.search, first.method) == ("Who approved the Q3 budget?", first.question, "none")


def test_a_follow_up_that_leans_on_the_conversation_names_its_subject() -> None:
    written = rewrite("Did they hold a wake for him?", BERRY)
    assert written.method == "context"
    assert written.question == "Did they hold a wake for him? (about Jan Berry, Los Angeles)"


def test_a_follow_up_that_names_its_own_subject_keeps_its_words() -> None:
    assert rewrite("How did Dean Torrence react?", BERRY).question == "How did Dean Torrence react?"


def test_the_search_carries_the_last_answers_then_the_earlier_questions() -> None:
    search = rewrite("Did they hold a wake for him?", BERRY).search.split("\n")
    assert search[0].startswith("Did they hold a wake for him?")
    # newest answer first, its citation marker dropped; then the questions, newest first
    assert search[1:] == [
        "He suffered a seizure eight days before his birthday.",
        BERRY[0].answer,
        BERRY[1].question,
        BERRY[0].question,
    ]


def test_an_answer_that_said_nothing_carries_nothing() -> None:
    history = [*BERRY, Exchange(question="was there a funeral?", answer="I don't know.", answered=False)]
    search = rewrite("who came?", history).search
    assert "I don't know" not in search and "was there a funeral?" in search


def test_the_search_stays_within_its_word_budget_however_long_the_conversation() -> None:
    long = [Exchange(question=f"question {i} " + "word " * 50, answer="answer " * 200) for i in range(40)]
    search = rewrite("and then?", long).search
    assert len(search.split()) <= SEARCH_WORDS


def test_a_titled_conversation_searches_with_its_topic_from_the_first_question() -> None:
    first = rewrite("when did he die?", [], topic="Jan and Dean: Berry's death")
    assert first.method == "context" and "Jan and Dean: Berry's death" in first.search
    assert first.question == "when did he die? (about Jan and Dean: Berry's death)"


def test_names_are_runs_of_capitals_joined_by_small_words_and_not_sentence_grammar() -> None:
    found = names("Jan and Dean played the Bank of England. What did He do? We flew to New York City, Texas.")
    assert found == ["Jan and Dean", "Bank of England", "New York City", "Texas"]
    assert names("Hello! Ask me about Keel.") == ["Keel"]


def test_subjects_count_a_short_form_as_its_full_name_and_ignore_lone_sentence_starts() -> None:
    talk = [
        Exchange(question="Hi", answer="Hello! Ask me about Keel."),
        Exchange(question="who founded Acme Corp?", answer="Acme Corp was founded by Ada Byron. Acme grew."),
    ]
    assert subjects(talk)[0] == "Acme Corp"  # "Acme Corp" twice and "Acme" once, once mid-sentence
    assert "Hello" not in subjects(talk) and "Ask" not in subjects(talk)
