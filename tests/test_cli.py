"""The command line as a learner and a grader meet it: real subprocesses, real files."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sdtutor.content.course import Course
from sdtutor.topics import TOPICS, resolve
from tests.conftest import REPO, plain, sdtutor

ANSI = re.compile(r"\x1b\[")


def _env(home: Path) -> dict[str, str]:
    return {"SDTUTOR_HOME": str(home)}


def test_list_json_has_all_twenty_topics_in_the_documented_shape(home: Path) -> None:
    result = sdtutor("list", "--json", env=_env(home))
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["number"], r["slug"], r["title"]) for r in rows] == [
        (t.number, t.slug, t.title) for t in TOPICS
    ]
    indexing = rows[6]
    assert indexing["lesson"] == "unread"
    assert indexing["quiz"]["best"] is None and indexing["quiz"]["written"] is True
    assert indexing["lab"] == "not started"
    # Every topic has its lab (a topic without content says "not written": see below).
    assert [r["lab"] for r in rows] == ["not started"] * 20


def test_topics_without_content_are_listed_and_say_so(home: Path) -> None:
    from sdtutor.status import course_status

    fixture = Course([REPO / "tests" / "fixtures" / "course"])
    rows = course_status(fixture)
    assert len(rows) == 20
    assert rows[6].lesson == "unread" and rows[6].quiz_written
    for row in rows[:6] + rows[7:]:
        assert (row.lesson, row.quiz_written, row.lab) == ("not written", False, "not written")
        assert row.to_json()["quiz"] == {"best": None, "attempts": 0, "written": False}


def test_list_table_names_every_topic(home: Path) -> None:
    result = sdtutor("list", env=_env(home))
    assert result.returncode == 0
    for topic in TOPICS:
        assert topic.slug in result.stdout
    assert not ANSI.search(result.stdout), "NO_COLOR must switch colour off"


def test_learn_without_a_terminal_prints_the_whole_lesson_and_records_it(home: Path) -> None:
    lesson = Course().lesson(resolve("indexing"))
    result = sdtutor("learn", "indexing", env=_env(home))
    assert result.returncode == 0, result.stderr
    for section in lesson.sections:
        assert section.heading in result.stdout
    assert "Take the quiz" not in result.stdout  # asks nothing
    rows = json.loads(sdtutor("list", "--json", env=_env(home)).stdout)
    assert rows[6]["lesson"] == "read"


def test_learn_renders_within_80_columns(home: Path) -> None:
    result = sdtutor("learn", "7", env={**_env(home), "COLUMNS": "80"})
    widest = max(len(line) for line in result.stdout.splitlines())
    assert widest <= 80


def _answers(correct: bool) -> str:
    quiz = Course().quiz(resolve("indexing"))
    lines = []
    for q in quiz.questions:
        if q.type == "single":
            right = q.answer
            wrong = next(c for c in "abcdef"[: len(q.choices)] if c != right)
        elif q.type == "multiple":
            right = "".join(sorted(q.answer))
            wrong = "a" if right != "a" else "b"
        elif q.type == "order":
            right = "".join(q.answer)
            wrong = "".join(sorted(q.answer)) if list(q.answer) != sorted(q.answer) else right[::-1]
        elif q.type == "truefalse":
            right = "t" if q.answer else "f"
            wrong = "f" if q.answer else "t"
        else:
            right = f"{q.answer:g}"
            wrong = f"{q.answer + q.tolerance + 1000:g}"
        lines.append(right if correct else wrong)
    return "\n".join(lines) + "\n"


def _quiz(home: Path, answers: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sdtutor", "quiz", "indexing"],
        input=answers,
        capture_output=True,
        text=True,
        env={"SDTUTOR_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "100", "PATH": "/usr/bin:/bin"},
        timeout=60,
    )


def test_quiz_scores_and_records_every_answer(home: Path) -> None:
    quiz = Course().quiz(resolve("indexing"))
    result = _quiz(home, _answers(correct=True))
    assert result.returncode == 0, result.stdout + result.stderr
    total = len(quiz.questions)
    assert f"Score: {total} of {total}" in result.stdout
    # Every question shows its explanation.
    for q in quiz.questions:
        assert q.explanation.split()[0] in result.stdout
    rows = json.loads(sdtutor("list", "--json", env=_env(home)).stdout)
    assert rows[6]["quiz"]["best"] == 1.0

    wrong = _quiz(home, _answers(correct=False))
    assert wrong.returncode == 1
    assert f"Score: 0 of {total}" in wrong.stdout
    assert "Re-read these sections" in wrong.stdout and "Ideas to revisit" in wrong.stdout
    assert "The answer:" in wrong.stdout
    rows = json.loads(sdtutor("list", "--json", env=_env(home)).stdout)
    assert rows[6]["quiz"]["best"] == 1.0 and rows[6]["quiz"]["attempts"] == 2

    export = json.loads(sdtutor("progress", "export", "--format", "json", env=_env(home)).stdout)
    assert len(export["answers"]) == 2 * total


def test_progress_survives_and_exports_no_secrets(home: Path, system_postgres: str) -> None:
    env = {**_env(home), "SDTUTOR_PROVIDER": "external", "SDTUTOR_POSTGRES_URL": system_postgres}
    sdtutor("learn", "indexing", env=env)
    assert sdtutor("lab", "hint", "indexing", env=env).returncode == 0
    data = json.loads(sdtutor("progress", "--json", env=env).stdout)
    assert data["totals"]["lessons_read"] == 1
    for fmt in ("json", "csv"):
        out = sdtutor("progress", "export", "--format", fmt, env=env)
        assert out.returncode == 0
        assert "postgresql://" not in out.stdout and "password" not in out.stdout.lower()
    csv_rows = sdtutor("progress", "export", "--format", "csv", env=env).stdout.splitlines()
    assert csv_rows[0].startswith("number,slug,title") and len(csv_rows) == 21
    bad = sdtutor("progress", "export", "--format", "xml", env=env)
    assert bad.returncode == 2 and "csv" in bad.stderr


def test_corrupt_progress_is_kept_aside_with_a_clear_message(home: Path) -> None:
    home.mkdir(parents=True)
    garbage = b"this is not a database" * 100
    (home / "progress.sqlite3").write_bytes(garbage)
    result = sdtutor("list", env=_env(home))
    assert result.returncode == 0
    assert "could not be read" in plain(result.stderr) and "Traceback" not in result.stderr
    kept = list(home.glob("progress.sqlite3.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == garbage
    again = sdtutor("list", env=_env(home))
    assert "could not be read" not in again.stderr


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (("learn", "99"), "no topic number 99"),
        (("quiz", "foo"), "no topic called 'foo'"),
        (("lab", "hint", "nosuch"), "no topic called 'nosuch'"),
        (("lab", "start", "21"), "no topic number 21"),
        (("lab", "stop"), "Name the lab"),
    ],
)
def test_bad_input_is_a_short_message_and_exit_2(
    home: Path, args: tuple[str, ...], expect: str
) -> None:
    result = sdtutor(*args, env=_env(home))
    assert result.returncode == 2
    assert expect in plain(result.stderr)
    assert "Traceback" not in result.stderr


def test_the_tui_without_a_terminal_points_to_list(home: Path) -> None:
    result = sdtutor(env=_env(home))
    assert result.returncode == 2 and "sdtutor list" in result.stderr


def test_doctor_reports_every_provider(home: Path) -> None:
    result = sdtutor("doctor", "--json", env=_env(home))
    assert result.returncode == 0
    report = json.loads(result.stdout)
    providers = {p["provider"]: p for p in report["providers"]}
    assert set(providers) == {"docker", "local", "external"}
    assert providers["local"]["ok"], providers["local"]
    for row in providers.values():
        assert row["ok"] or row["fix"], f"{row['provider']} fails without saying how to fix it"
    text = sdtutor("doctor", env=_env(home))
    assert "local" in text.stdout and "external" in text.stdout
    # Which provider each lab would get here: no Docker engine, so the local servers.
    labs = {lab["topic"]: lab for lab in report["labs"]}
    assert labs["indexing"]["provider"] == "local" and labs["indexing"]["services"] == ["postgres"]
    assert "lab indexing: local" in text.stdout
    # How checks run learner code here (as root: as `nobody`, or it says why not).
    import os

    note = report["learner_code"]
    assert note.startswith(("learner code runs as ", "`nobody` ", "running as root")), note
    if os.geteuid() != 0:
        assert note == "learner code runs as this user"
    elif note.endswith("runs as root"):
        assert "nobody" in note  # and it says why `nobody` could not be used
    assert f"checks: {note}" in text.stdout
    # Asked for a provider that cannot serve the lab, doctor says why.
    external = sdtutor("doctor", "--json", env={**_env(home), "SDTUTOR_PROVIDER": "external"})
    indexing = next(x for x in json.loads(external.stdout)["labs"] if x["topic"] == "indexing")
    assert indexing["provider"] is None and "does not work here" in indexing["reason"]


def _commands() -> list[list[str]]:
    from typer.main import get_command

    from sdtutor.cli.main import app

    root = get_command(app)
    found: list[list[str]] = []

    def walk(group: object, prefix: list[str]) -> None:
        for name, command in getattr(group, "commands", {}).items():
            found.append([*prefix, name])
            walk(command, [*prefix, name])

    walk(root, [])
    return found


def test_every_command_has_help_and_is_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    commands = _commands()
    assert ["lab", "check"] in commands and ["progress", "export"] in commands
    from concurrent.futures import ThreadPoolExecutor

    # Each is a process of its own that mostly starts Python: run a few at once.
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda command: sdtutor(*command, "--help"), commands))
    for command, result in zip(commands, results, strict=True):
        assert result.returncode == 0, command
        assert "Usage" in result.stdout
        assert f"sdtutor {' '.join(command)}" in readme, f"README does not show {command}"


def test_version() -> None:
    result = sdtutor("--version")
    assert result.returncode == 0 and result.stdout.startswith("sdtutor ")


@pytest.mark.parametrize("command", [["list"], ["progress"], ["lab", "info", "indexing"]])
def test_a_home_that_is_a_file_is_a_short_message(tmp_path: Path, command: list[str]) -> None:
    home = tmp_path / "home"
    home.write_text("not a folder")
    result = sdtutor(*command, env={"SDTUTOR_HOME": str(home)})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "which is a file, not a folder" in plain(result.stderr)
