"""Quiz grading: what a learner types, read generously but marked strictly."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdtutor.content.loader import load_quiz
from sdtutor.content.models import Question
from sdtutor.grading import BadResponse, describe_answer, grade, parse, summarise

FIXTURE_QUIZ = (
    Path(__file__).resolve().parent / "fixtures" / "course" / "quizzes" / "07-indexing.yaml"
)

SINGLE = Question(
    id="single",
    type="single",
    prompt="Which?",
    explanation="...",
    choices=("heap", "index", "cache", "log"),
    answer="b",
)
MULTIPLE = Question(
    id="multiple",
    type="multiple",
    prompt="Which ones?",
    explanation="...",
    choices=("equality", "range", "suffix LIKE", "sort"),
    answer=frozenset({"a", "c"}),
)
ORDER = Question(
    id="order",
    type="order",
    prompt="In what order?",
    explanation="...",
    choices=("heap", "root", "leaf"),
    answer=("b", "c", "a"),
)
NUMERIC = Question(
    id="numeric",
    type="numeric",
    prompt="How many?",
    explanation="...",
    answer=100.0,
    tolerance=5.0,
    unit="ms",
)
EXACT = Question(
    id="exact", type="numeric", prompt="How many?", explanation="...", answer=1000.0, unit="rows"
)
TRUEFALSE = Question(id="tf", type="truefalse", prompt="True?", explanation="...", answer=False)


# ---------------------------------------------------------------- each type, right and wrong


@pytest.mark.parametrize(
    ("question", "right", "wrong"),
    [
        (SINGLE, "b", "a"),
        (MULTIPLE, "a c", "a"),
        (ORDER, "bca", "abc"),
        (NUMERIC, "100", "120"),
        (TRUEFALSE, "false", "true"),
    ],
)
def test_each_type_right_and_wrong(question: Question, right: str, wrong: str) -> None:
    assert grade(question, right).correct is True
    assert grade(question, wrong).correct is False


def test_single_is_case_and_space_insensitive() -> None:
    assert grade(SINGLE, "  B \n").correct
    assert grade(SINGLE, "  B \n").response == "B"


def test_single_refuses_two_letters() -> None:
    with pytest.raises(BadResponse, match="one letter"):
        parse(SINGLE, "ab")


@pytest.mark.parametrize("text", ["ac", "ca", "a, c", "c,a", "A C", "a;c"])
def test_multiple_is_order_insensitive(text: str) -> None:
    assert grade(MULTIPLE, text).correct


@pytest.mark.parametrize("text", ["a", "c", "acd", "abcd"])
def test_multiple_needs_exactly_the_right_set(text: str) -> None:
    assert not grade(MULTIPLE, text).correct


def test_multiple_refuses_a_repeated_letter() -> None:
    with pytest.raises(BadResponse, match="once"):
        parse(MULTIPLE, "a a c")


@pytest.mark.parametrize("text", ["bca", "b c a", "b, c, a", "BCA"])
def test_order_right(text: str) -> None:
    assert grade(ORDER, text).correct


@pytest.mark.parametrize("text", ["acb", "cba", "bac"])
def test_order_must_be_exact(text: str) -> None:
    assert not grade(ORDER, text).correct


@pytest.mark.parametrize("text", ["aab", "bcaa", "bc"])
def test_order_refuses_repeated_or_missing_letters(text: str) -> None:
    with pytest.raises(BadResponse, match="each once"):
        parse(ORDER, text)


# ---------------------------------------------------------------- numbers


@pytest.mark.parametrize("text", ["95", "105", "100", "97.5", "100 ms", "100ms", "105 MS"])
def test_numeric_within_tolerance_inclusive(text: str) -> None:
    assert grade(NUMERIC, text).correct, text


@pytest.mark.parametrize("text", ["94.99", "105.01", "-100", "0"])
def test_numeric_outside_tolerance(text: str) -> None:
    assert not grade(NUMERIC, text).correct, text


def test_numeric_tolerance_edge_survives_float_rounding() -> None:
    q = Question(id="f", type="numeric", prompt="?", explanation="...", answer=0.3, tolerance=0.1)
    # 0.4 - 0.3 is 0.10000000000000003 in binary floating point.
    assert grade(q, "0.4").correct
    assert grade(q, "0.2").correct
    assert not grade(q, "0.41").correct


@pytest.mark.parametrize("text", ["1,000", "1000", "1_000", "1,000 rows", "1000rows", "1e3"])
def test_numeric_exact_parses_common_spellings(text: str) -> None:
    assert grade(EXACT, text).correct, text


def test_numeric_exact_has_no_tolerance() -> None:
    assert not grade(EXACT, "1001").correct


@pytest.mark.parametrize("text", ["ten", "", "nan", "inf", "100 seconds", "1000 ms"])
def test_numeric_refuses_what_is_not_a_number(text: str) -> None:
    with pytest.raises(BadResponse):
        parse(EXACT, text)


# ---------------------------------------------------------------- true / false


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("t", True),
        ("true", True),
        ("yes", True),
        ("y", True),
        ("T", True),
        ("f", False),
        ("false", False),
        ("no", False),
        ("n", False),
        (" No ", False),
    ],
)
def test_truefalse_spellings(text: str, value: bool) -> None:
    assert parse(TRUEFALSE, text) is value
    assert grade(TRUEFALSE, text).correct is (value is False)


@pytest.mark.parametrize("text", ["maybe", "", "1", "tru"])
def test_truefalse_refuses_anything_else(text: str) -> None:
    with pytest.raises(BadResponse, match="t \\(true\\) or f \\(false\\)"):
        parse(TRUEFALSE, text)


# ---------------------------------------------------------------- malformed responses


@pytest.mark.parametrize(
    ("question", "text", "last"),
    [
        (SINGLE, "e", "d"),
        (SINGLE, "z", "d"),
        (MULTIPLE, "a e", "d"),
        (ORDER, "bcd", "c"),
        (ORDER, "b c a d", "c"),
    ],
)
def test_letters_beyond_the_choices(question: Question, text: str, last: str) -> None:
    with pytest.raises(BadResponse) as info:
        grade(question, text)
    assert str(info.value) == f"Type letters from a to {last}."


@pytest.mark.parametrize("question", [SINGLE, MULTIPLE, ORDER])
@pytest.mark.parametrize("text", ["", "   ", ", ;"])
def test_empty_response(question: Question, text: str) -> None:
    with pytest.raises(BadResponse):
        grade(question, text)


def test_bad_response_is_a_value_error() -> None:
    assert issubclass(BadResponse, ValueError)


# ---------------------------------------------------------------- describing the answer


def test_describe_answer_for_each_type() -> None:
    assert describe_answer(SINGLE) == "b) index"
    assert describe_answer(MULTIPLE) == "a) equality; c) suffix LIKE"
    assert describe_answer(ORDER) == "b) root → c) leaf → a) heap"
    assert describe_answer(NUMERIC) == "100 (± 5) ms"
    assert describe_answer(EXACT) == "1,000 rows"
    assert describe_answer(TRUEFALSE) == "false"


def test_graded_carries_the_right_answer() -> None:
    graded = grade(SINGLE, "a")
    assert not graded.correct
    assert graded.right_answer == "b) index"


def test_every_fixture_question_accepts_its_own_answer() -> None:
    quiz = load_quiz(FIXTURE_QUIZ)
    for q in quiz.questions:
        if q.type == "single":
            typed = q.answer
        elif q.type == "multiple":
            typed = ", ".join(sorted(q.answer, reverse=True))
        elif q.type == "order":
            typed = " ".join(q.answer)
        elif q.type == "truefalse":
            typed = "yes" if q.answer else "no"
        else:
            typed = f"{q.answer:,.0f} {q.unit}"
        assert grade(q, typed).correct, f"{q.id}: {typed!r}"


# ---------------------------------------------------------------- the end of a quiz


def question(qid: str, idea: str = "", section: str = "") -> Question:
    return Question(
        id=qid,
        type="truefalse",
        prompt="?",
        explanation="...",
        answer=True,
        idea=idea,
        section=section,
    )


def test_summarise_names_most_missed_first() -> None:
    qs = [
        question("q1", "leftmost prefix", "How it works"),
        question("q2", "partial indexes", "Trade-offs"),
        question("q3", "partial indexes", "Trade-offs"),
        question("q4", "keyset pagination", "How it works"),
        question("q5", "", "Trade-offs"),
        question("q6", "B-tree depth", "Mental model"),
    ]
    # q1 is missed first, but partial indexes is missed twice: it leads.
    responses = ["no", "no", "no", "yes", "no", "yes"]
    summary = summarise([grade(q, r) for q, r in zip(qs, responses, strict=True)])
    assert (summary.correct, summary.total) == (2, 6)
    assert summary.score == pytest.approx(2 / 6)
    assert summary.missed_ideas == ("partial indexes", "leftmost prefix", "q5")
    assert summary.sections == ("Trade-offs", "How it works")


def test_summarise_all_right() -> None:
    qs = [question("q1", "a", "S"), question("q2", "b", "T")]
    summary = summarise([grade(q, "t") for q in qs])
    assert summary.score == 1.0
    assert summary.missed_ideas == ()
    assert summary.sections == ()


def test_summarise_nothing_answered() -> None:
    summary = summarise([])
    assert (summary.correct, summary.total, summary.score) == (0, 0, 0.0)


def _right_texts(question: Question) -> object:
    from sdtutor.content.models import LETTERS

    answer = question.answer
    if question.type == "single":
        return question.choices[LETTERS.index(answer)]
    if question.type == "multiple":
        return {question.choices[LETTERS.index(a)] for a in answer}
    if question.type == "order":
        return [question.choices[LETTERS.index(a)] for a in answer]
    return answer


def test_shuffled_choices_keep_the_same_right_answer_under_new_letters() -> None:
    from sdtutor.content.course import Course
    from sdtutor.grading import shuffled
    from sdtutor.topics import TOPICS

    orders = set()
    for topic in TOPICS:
        for question in Course().quiz(topic).questions:
            right = _right_texts(question)
            for seed in range(4):
                shown = shuffled(question, seed)
                assert sorted(shown.choices) == sorted(question.choices)
                if question.type == "single":
                    assert grade(shown, shown.answer).correct
                elif question.type == "multiple":
                    assert grade(shown, "".join(sorted(shown.answer))).correct
                elif question.type == "order":
                    assert grade(shown, "".join(shown.answer)).correct
                # The right answer is the same choices (texts), whatever their letters.
                assert _right_texts(shown) == right
                orders.add((question.id, shown.choices))
    # Some question is shown in more than one order across seeds (positions are not fixed).
    assert len(orders) > sum(len(Course().quiz(t).questions) for t in TOPICS)


def test_shuffled_is_stable_for_one_seed_and_leaves_other_types_alone() -> None:
    from sdtutor.grading import shuffled

    assert shuffled(SINGLE, "attempt-3") == shuffled(SINGLE, "attempt-3")
    numeric = Question(id="n", type="numeric", prompt="?", explanation=".", answer=3.0)
    assert shuffled(numeric, 1) is numeric


def test_original_letters_map_a_shuffled_response_back_to_the_file() -> None:
    from sdtutor.grading import original_letters, shuffled

    for seed in range(6):
        for question, right in ((SINGLE, "b"), (MULTIPLE, "ac"), (ORDER, "bca")):
            shown = shuffled(question, seed)
            typed = {
                "single": shown.answer,
                "multiple": "".join(sorted(shown.answer)),
                "order": "".join(shown.answer),
            }[question.type]
            assert grade(shown, typed).correct
            assert original_letters(question, shown, typed) == right
    assert original_letters(NUMERIC, NUMERIC, "62,500") == "62,500"


def test_relettered_explanations_name_the_choices_as_shown() -> None:
    from sdtutor.grading import relettered

    question = Question(
        id="q",
        type="multiple",
        prompt="?",
        explanation="Right: (a, c) and (b). Wrong: count(c), (a DESC, b), (z).",
        choices=("one", "two", "three"),
        answer=frozenset({"a", "c"}),
    )
    shown = Question(
        id="q",
        type="multiple",
        prompt="?",
        explanation=question.explanation,
        choices=("three", "one", "two"),
        answer=frozenset({"b", "a"}),
    )
    assert relettered(question.explanation, question, shown) == (
        "Right: (b, a) and (c). Wrong: count(c), (a DESC, b), (z)."
    )
    assert relettered(question.explanation, question, question) == question.explanation


def test_the_pass_mark() -> None:
    from sdtutor.grading import PASS_MARK

    assert summarise([grade(SINGLE, "b")] * 7 + [grade(SINGLE, "a")] * 3).score >= PASS_MARK
    assert summarise([grade(SINGLE, "b")] * 6 + [grade(SINGLE, "a")] * 4).score < PASS_MARK
