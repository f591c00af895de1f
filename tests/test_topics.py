"""A TOPIC argument resolves by number, slug or unambiguous prefix, and says why when not."""

from __future__ import annotations

import pytest

from sdtutor.errors import UsageError
from sdtutor.topics import TOPICS, resolve


def test_twenty_topics_numbered_in_order() -> None:
    assert [t.number for t in TOPICS] == list(range(1, 21))
    assert len({t.slug for t in TOPICS}) == 20


@pytest.mark.parametrize("arg", ["7", "07", " 7 "])
def test_number_resolves(arg: str) -> None:
    assert resolve(arg).slug == "indexing"


@pytest.mark.parametrize(
    ("arg", "slug"),
    [
        ("indexing", "indexing"),
        ("ci-cd", "ci-cd"),
        ("Indexing", "indexing"),
        ("  auth ", "auth"),
    ],
)
def test_slug_resolves(arg: str, slug: str) -> None:
    assert resolve(arg).slug == slug


@pytest.mark.parametrize(
    ("arg", "slug"),
    [("index", "indexing"), ("rate", "rate-limiting"), ("ci", "ci-cd"), ("cont", "containers")],
)
def test_unambiguous_prefix_resolves(arg: str, slug: str) -> None:
    assert resolve(arg).slug == slug


def test_dirname_is_zero_padded() -> None:
    assert resolve("indexing").dirname == "07-indexing"
    assert resolve("20").dirname == "20-scaling"


def test_ambiguous_prefix_names_every_candidate() -> None:
    with pytest.raises(UsageError) as info:
        resolve("c")
    message = info.value.message
    for slug in ("caching", "ci-cd", "containers", "consistency"):
        assert slug in message, f"{slug!r} missing from {message!r}"
    assert "scaling" not in message
    assert info.value.hint, "an ambiguous topic should say what to do next"


def test_unknown_topic_suggests_close_match() -> None:
    with pytest.raises(UsageError) as info:
        resolve("indexng")
    assert "indexng" in info.value.message
    assert "indexing" in info.value.hint


def test_unknown_topic_with_no_close_match_points_to_list() -> None:
    with pytest.raises(UsageError) as info:
        resolve("zzzz")
    assert "sdtutor list" in info.value.hint


@pytest.mark.parametrize("arg", ["0", "21", "99"])
def test_number_out_of_range(arg: str) -> None:
    with pytest.raises(UsageError) as info:
        resolve(arg)
    assert f"no topic number {int(arg)}" in info.value.message
    assert "1 to 20" in info.value.hint


def test_empty_argument_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        resolve("   ")


def test_usage_error_exits_with_2() -> None:
    with pytest.raises(UsageError) as info:
        resolve("nope")
    assert info.value.exit_code == 2
