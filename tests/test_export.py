"""`sdtutor progress export`, as an instructor reads it: who it is, typed values, the
lessons' own titles, nothing secret."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from sdtutor.progress.store import ProgressStore
from tests.conftest import sdtutor


def _env(home: Path) -> dict[str, str]:
    return {"SDTUTOR_HOME": str(home)}


def test_export_names_the_learner_and_types_its_values(home: Path) -> None:
    with ProgressStore() as store:  # the `home` fixture set SDTUTOR_HOME
        store.record_check("indexing", ["has-index"], ["keyset-pagination"])
        attempt = store.start_quiz("caching", 2)
        store.record_answer(attempt, "caching", "ttl-meaning", "b", True)
        store.record_answer(attempt, "caching", "stampede", "a", False)
        store.finish_quiz(attempt)

    nameless = sdtutor("progress", "export", env=_env(home))
    assert nameless.returncode == 0
    assert "--learner" in nameless.stderr, "a nameless export says how to add a name"
    assert json.loads(nameless.stdout)["learner"]["name"] == ""

    named = sdtutor("progress", "export", "--learner", "Ada Lovelace", env=_env(home))
    data = json.loads(named.stdout)
    assert data["learner"]["name"] == "Ada Lovelace"
    assert len(data["learner"]["home_id"]) >= 8

    # Remembered: the next export carries the name without the option.
    again = json.loads(sdtutor("progress", "export", env=_env(home)).stdout)
    assert again["learner"]["name"] == "Ada Lovelace"
    assert [a["correct"] for a in again["answers"]] == [True, False]
    check = again["lab_checks"][0]
    assert check["passed"] is False
    assert check["passed_ids"] == ["has-index"] and check["failed_ids"] == ["keyset-pagination"]

    caching = next(t for t in again["topics"] if t["slug"] == "caching")
    from sdtutor.content.course import Course
    from sdtutor.topics import resolve

    assert caching["title"] == Course().lesson(resolve("caching")).title
    assert caching["short_title"] == resolve("caching").title

    rows = list(
        csv.DictReader(
            io.StringIO(sdtutor("progress", "export", "-f", "csv", env=_env(home)).stdout)
        )
    )
    assert len(rows) == 20 and {r["learner"] for r in rows} == {"Ada Lovelace"}
    assert next(r for r in rows if r["slug"] == "caching")["title"] == caching["title"]
