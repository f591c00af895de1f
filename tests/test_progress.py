"""The progress store: migrations, what it records, corruption, and two terminals at once."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdtutor import locations
from sdtutor.progress import store as store_module
from sdtutor.progress.migrations import MIGRATIONS
from sdtutor.progress.store import ProgressStore

MIGRATION_NAMES = [name for name, _ in MIGRATIONS]


@pytest.fixture
def sd_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty SDTUTOR_HOME for this test alone."""
    home = tmp_path / "home"
    monkeypatch.setenv("SDTUTOR_HOME", str(home))
    return home


@pytest.fixture
def store(sd_home: Path) -> Iterator[ProgressStore]:
    with ProgressStore() as s:
        yield s


def migrations_applied(path: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT name, applied_at FROM schema_migrations ORDER BY name"
        ).fetchall()
    finally:
        conn.close()


def count(path: Path, sql: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


def notices_of(s: ProgressStore) -> list[str]:
    """The store's notices, wherever this version keeps them."""
    return list(getattr(s, "notices", [])) + list(getattr(store_module, "PENDING_NOTICES", []))


# ---------------------------------------------------------------- opening and migrations


def test_store_lives_under_sdtutor_home(sd_home: Path) -> None:
    with ProgressStore() as s:
        assert s.path == sd_home / "progress.sqlite3"
    assert (sd_home / "progress.sqlite3").is_file()
    assert locations.progress_db() == sd_home / "progress.sqlite3"


def test_fresh_store_applies_every_migration_once(sd_home: Path) -> None:
    with ProgressStore() as s:
        mode = s.conn.execute("PRAGMA journal_mode").fetchone()[0]
        tables = {
            r[0] for r in s.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
    assert mode == "wal"
    assert {"lesson_reads", "quiz_attempts", "quiz_answers", "labs", "lab_checks"} <= tables
    assert [name for name, _ in migrations_applied(sd_home / "progress.sqlite3")] == sorted(
        MIGRATION_NAMES
    )


def test_reopening_does_not_reapply_migrations(sd_home: Path) -> None:
    path = sd_home / "progress.sqlite3"
    with ProgressStore() as s:
        s.record_lesson("indexing", 9, True)
    first = migrations_applied(path)
    # Backdate the record: a re-applied migration would write a new applied_at.
    conn = sqlite3.connect(path)
    conn.execute("UPDATE schema_migrations SET applied_at = '2000-01-01T00:00:00+00:00'")
    conn.commit()
    conn.close()
    with ProgressStore() as s:
        assert s.topic("indexing").lesson == "read", "reopening lost what was recorded"
    again = migrations_applied(path)
    assert [name for name, _ in again] == [name for name, _ in first]
    assert {applied for _, applied in again} == {"2000-01-01T00:00:00+00:00"}


# ---------------------------------------------------------------- lessons


def test_lesson_status_unread_started_read(store: ProgressStore) -> None:
    assert store.topic("indexing").lesson == "unread"
    store.record_lesson("indexing", 3, False)
    assert store.topic("indexing").lesson == "started"
    store.record_lesson("indexing", 9, True)
    assert store.topic("indexing").lesson == "read"
    # Dipping back into a lesson already read does not make it unread again.
    store.record_lesson("indexing", 1, False)
    assert store.topic("indexing").lesson == "read"
    assert store.topic("caching").lesson == "unread"


# ---------------------------------------------------------------- quizzes


def test_best_score_counts_only_finished_attempts(store: ProgressStore) -> None:
    first = store.start_quiz("indexing", 4)
    for qid, ok in [("q1", True), ("q2", True), ("q3", False), ("q4", False)]:
        store.record_answer(first, "indexing", qid, "a", ok)
    store.finish_quiz(first)
    # A perfect attempt abandoned half way does not count.
    second = store.start_quiz("indexing", 4)
    for qid in ("q1", "q2", "q3", "q4"):
        store.record_answer(second, "indexing", qid, "b", True)
    tp = store.topic("indexing")
    assert tp.quiz_best == 0.5
    assert tp.quiz_attempts == 1
    store.finish_quiz(second)
    tp = store.topic("indexing")
    assert tp.quiz_best == 1.0
    assert tp.quiz_attempts == 2


def test_no_finished_attempt_means_no_score(store: ProgressStore) -> None:
    attempt = store.start_quiz("indexing", 3)
    store.record_answer(attempt, "indexing", "q1", "a", True)
    tp = store.topic("indexing")
    assert tp.quiz_best is None
    assert tp.quiz_attempts == 0


def test_best_score_is_rounded_fraction(store: ProgressStore) -> None:
    attempt = store.start_quiz("indexing", 3)
    for qid, ok in [("q1", True), ("q2", True), ("q3", False)]:
        store.record_answer(attempt, "indexing", qid, "a", ok)
    store.finish_quiz(attempt)
    assert store.topic("indexing").quiz_best == 0.6667


def test_review_answers_are_kept_outside_attempts(store: ProgressStore) -> None:
    store.record_answer(None, "indexing", "q1", "b", True)
    store.record_answer(None, "caching", "q9", "a", False)
    assert [(a["topic"], a["question_id"], a["correct"]) for a in store.answers()] == [
        ("indexing", "q1", 1),
        ("caching", "q9", 0),
    ]
    assert [a["question_id"] for a in store.answers("caching")] == ["q9"]
    assert store.topic("indexing").quiz_attempts == 0


# ---------------------------------------------------------------- labs


def test_lab_status_through_its_life(store: ProgressStore) -> None:
    assert store.topic("indexing").lab == "not started"
    store.lab_started("indexing", "/ws/07-indexing", "local")
    tp = store.topic("indexing")
    assert (tp.lab, tp.workspace) == ("started", "/ws/07-indexing")
    store.record_check("indexing", ["a"], ["b"])
    assert store.topic("indexing").lab == "started"
    assert not store.lab_passed("indexing")
    store.record_check("indexing", ["a", "b"], [])
    assert store.topic("indexing").lab == "passed"
    assert store.lab_passed("indexing")


def test_passed_lab_stays_passed(store: ProgressStore) -> None:
    store.lab_started("indexing", "/ws", "docker")
    store.record_check("indexing", ["a", "b"], [])
    store.record_check("indexing", ["a"], ["b"])
    assert store.lab_passed("indexing")
    assert store.topic("indexing").lab == "passed"
    # Starting the lab again (a new workspace) keeps the pass.
    store.lab_started("indexing", "/elsewhere", "local")
    tp = store.topic("indexing")
    assert (tp.lab, tp.workspace) == ("passed", "/elsewhere")
    history = store.lab_history()
    assert [h["passed"] for h in history] == [True, False]
    assert history[1]["failed_ids"] == ["b"]


def test_next_hint_counts_up_and_caps(store: ProgressStore) -> None:
    store.lab_started("indexing", "/ws", "local")
    assert [store.next_hint("indexing", 3) for _ in range(5)] == [1, 2, 3, 3, 3]
    assert store.topic("indexing").hints_shown == 3
    store.reset_hints("indexing")
    assert store.next_hint("indexing", 3) == 1


def test_lab_started_after_a_hint_is_started(store: ProgressStore) -> None:
    # `sdtutor lab hint indexing` works before `lab start`; it must not pin the status.
    store.next_hint("indexing", 3)
    store.lab_started("indexing", "/ws", "local")
    tp = store.topic("indexing")
    assert tp.hints_shown == 1
    assert tp.lab == "started", (
        "a hint asked for before `lab start` leaves the lab 'not started' (in `sdtutor "
        "list`) until it passes: next_hint inserts a 'not started' row and lab_started's "
        f"ON CONFLICT update never sets the status (got {tp.lab!r})"
    )


# ---------------------------------------------------------------- a corrupt file


def test_corrupt_file_is_kept_aside_and_a_new_store_works(
    sd_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if hasattr(store_module, "PENDING_NOTICES"):
        monkeypatch.setattr(store_module, "PENDING_NOTICES", [])
    sd_home.mkdir(parents=True)
    path = sd_home / "progress.sqlite3"
    garbage = b"this is not an SQLite database\x00\xff" * 64
    path.write_bytes(garbage)

    with ProgressStore() as s:
        notices = notices_of(s)
        s.record_lesson("indexing", 9, True)
        assert s.topic("indexing").lesson == "read"

    aside = sorted(sd_home.glob("progress.sqlite3.corrupt-*"))
    aside = [p for p in aside if not p.name.endswith(("-wal", "-shm"))]
    assert len(aside) == 1, f"expected one file kept aside, found {list(sd_home.iterdir())}"
    assert aside[0].read_bytes() == garbage
    assert len(notices) == 1, notices
    assert aside[0].name in notices[0]
    assert [name for name, _ in migrations_applied(path)] == sorted(MIGRATION_NAMES)
    with ProgressStore() as s:
        assert s.topic("indexing").lesson == "read"
        assert notices_of(s) == notices, "a healthy store must not add a notice"


# ---------------------------------------------------------------- two terminals at once


def test_two_stores_interleaved_lose_nothing(sd_home: Path) -> None:
    with ProgressStore() as one, ProgressStore() as two:
        attempt = one.start_quiz("indexing", 40)
        for i in range(20):
            one.record_answer(attempt, "indexing", f"one-{i}", "a", True)
            two.record_answer(attempt, "indexing", f"two-{i}", "b", True)
            two.record_lesson("caching", i, False)
        one.finish_quiz(attempt)
        assert two.topic("indexing").quiz_best == 1.0
        assert one.topic("caching").lesson == "started"
    assert count(sd_home / "progress.sqlite3", "SELECT COUNT(*) FROM quiz_answers") == 40


def test_two_threads_each_with_a_store_lose_nothing(sd_home: Path) -> None:
    n = 150
    with ProgressStore() as s:
        attempt = s.start_quiz("indexing", 2 * n)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            with ProgressStore() as s:
                barrier.wait()
                for i in range(n):
                    s.record_answer(attempt, "indexing", f"{name}-{i}", "a", True)
                    if i % 10 == 0:
                        s.record_check("indexing", [name], [])
                        s.next_hint("indexing", 1000)
        except BaseException as exc:  # reported below; a thread cannot fail the test itself
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(name,)) for name in ("left", "right")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    path = sd_home / "progress.sqlite3"
    assert count(path, "SELECT COUNT(*) FROM quiz_answers") == 2 * n
    assert count(path, f"SELECT correct FROM quiz_attempts WHERE id = {attempt}") == 2 * n
    assert count(path, "SELECT COUNT(*) FROM lab_checks") == 2 * (n // 10)
    assert count(path, "SELECT hints_shown FROM labs WHERE topic = 'indexing'") == 2 * (n // 10)


WRITER = textwrap.dedent(
    """
    import sys
    import time
    from pathlib import Path
    from sdtutor.progress.store import ProgressStore

    name, n, go = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    while not go.exists():
        time.sleep(0.001)
    with ProgressStore() as s:
        attempt = s.start_quiz("indexing", n)
        for i in range(n):
            s.record_answer(attempt, "indexing", f"{name}-{i}", "a", True)
            s.record_lesson("indexing", i, False)
        s.finish_quiz(attempt)
    """
)


def test_two_processes_lose_nothing(sd_home: Path, tmp_path: Path) -> None:
    n = 100
    ProgressStore().close()  # the learner's store exists; two terminals now write to it
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, name, str(n), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("first", "second")
    ]
    go.touch()  # both start writing at once
    outputs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    path = sd_home / "progress.sqlite3"
    assert [name for name, _ in migrations_applied(path)] == sorted(MIGRATION_NAMES)
    assert count(path, "SELECT COUNT(*) FROM quiz_answers") == 2 * n
    assert count(path, "SELECT COUNT(*) FROM lesson_reads") == 2 * n
    assert count(path, "SELECT COUNT(*) FROM quiz_attempts WHERE correct = total") == 2
    assert not list(sd_home.glob("*.corrupt-*")), "a busy store was mistaken for a corrupt one"
    with ProgressStore() as s:
        assert s.topic("indexing").quiz_attempts == 2


def open_store(path: Path, barrier: threading.Barrier, errors: list[BaseException]) -> None:
    """Open and close a store once every thread is ready; keep what went wrong."""
    barrier.wait()
    try:
        ProgressStore(path).close()
    except BaseException as exc:  # a thread cannot fail the test; the test reports it
        errors.append(exc)


def test_fresh_store_opened_by_several_at_once(tmp_path: Path) -> None:
    # The first run, with two commands started together (a script, a grader, two
    # terminals): every one of them must wait its turn, none may fail. The race window is
    # short, so try it many times; a correct store passes every round.
    for round_ in range(200):
        path = tmp_path / f"round-{round_}" / "progress.sqlite3"
        barrier = threading.Barrier(4)
        errors: list[BaseException] = []
        threads = [
            threading.Thread(target=open_store, args=(path, barrier, errors)) for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors, (
            f"round {round_}: opening a new progress store from 4 threads at once failed "
            f"with {errors[0]!r} instead of waiting out the busy timeout (SQLite answers "
            "PRAGMA journal_mode = WAL with SQLITE_BUSY at once, without calling the busy "
            "handler, and ProgressStore._open gives up on the first 'locked')"
        )
        assert [name for name, _ in migrations_applied(path)] == sorted(MIGRATION_NAMES)
