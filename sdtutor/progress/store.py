"""The progress store: the only module that writes progress.

SQLite under SDTUTOR_HOME, in WAL mode with a busy timeout so two terminals can work at
once. Secrets (service passwords) never go here; exports can be shared with an instructor.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sdtutor import locations
from sdtutor.errors import ProgressError
from sdtutor.progress.migrations import MIGRATIONS

LAB_STATUSES = ("not started", "started", "passed")
PENDING_NOTICES: list[str] = []
"""Notices for the front end to show once (e.g. a corrupt database kept aside)."""


def now() -> str:
    """The current time as ISO 8601 UTC, to the second."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


@dataclass
class TopicProgress:
    """What a learner has done on one topic."""

    topic: str
    lesson: str = "unread"  # unread | started | read
    quiz_best: float | None = None
    quiz_attempts: int = 0
    lab: str = "not started"
    workspace: str | None = None
    hints_shown: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class ProgressStore:
    """Reads and writes progress; open one per command."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or locations.progress_db()
        self.conn = self._open()

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ProgressError(
                f"Cannot make the folder for your progress, {self.path.parent}: "
                f"{exc.strerror or exc}.",
                "Point SDTUTOR_HOME at a folder you can write, or unset it.",
            ) from None
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 10000")
        # Switching a new file to WAL does not wait for the busy timeout: when two
        # commands create the store at the same moment, one is told "locked" at once.
        deadline = time.monotonic() + 10
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def _open(self) -> sqlite3.Connection:
        try:
            conn = self._connect()
            self._migrate(conn)
            return conn
        except sqlite3.DatabaseError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise ProgressError(
                    "The progress database is busy in another terminal.",
                    "Try again in a moment.",
                ) from None
            aside = self.path.with_name(
                f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
            )
            while aside.exists():
                aside = aside.with_name(aside.name + "+")
            with contextlib.suppress(FileNotFoundError):
                self.path.rename(aside)
            for suffix in ("-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    Path(str(self.path) + suffix).rename(str(aside) + suffix)
            PENDING_NOTICES.append(
                f"The progress database {self.path} could not be read ({exc}). It was kept "
                f"aside as {aside.name}, and a new one was started. Keep the old file if "
                "you want to recover it; sdtutor will not touch it again."
            )
            conn = self._connect()
            self._migrate(conn)
            return conn

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        done = {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
        for name, sql in MIGRATIONS:
            if name in done:
                continue
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Another terminal may have applied it while we waited for the lock.
                if conn.execute(
                    "SELECT 1 FROM schema_migrations WHERE name = ?", (name,)
                ).fetchone():
                    conn.execute("COMMIT")
                    continue
                for statement in sql.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)", (name, now())
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        """Close the database."""
        self.conn.close()

    def __enter__(self) -> ProgressStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    # ---------------------------------------------------------------- lessons

    def record_lesson(self, topic: str, sections: int, finished: bool) -> None:
        """Record that the learner read a lesson (all of it, or `sections` of it)."""
        with self._tx() as c:
            c.execute(
                "INSERT INTO lesson_reads (topic, read_at, sections, finished) VALUES (?,?,?,?)",
                (topic, now(), sections, int(finished)),
            )

    def save_position(self, topic: str, section: int, line: int = 0) -> None:
        """Where the learner is in a lesson (0-based section, first line shown), so the
        next `learn TOPIC` (or the TUI's reader) opens there."""
        with self._tx() as c:
            c.execute(
                "INSERT INTO reading_positions (topic, section, line, updated_at) "
                "VALUES (?,?,?,?) ON CONFLICT (topic) DO UPDATE SET section = excluded.section, "
                "line = excluded.line, updated_at = excluded.updated_at",
                (topic, section, line, now()),
            )

    def position(self, topic: str) -> tuple[int, int] | None:
        """The saved (section, line) in a lesson, or None if it was never opened."""
        row = self.conn.execute(
            "SELECT section, line FROM reading_positions WHERE topic = ?", (topic,)
        ).fetchone()
        return (int(row[0]), int(row[1])) if row else None

    # ---------------------------------------------------------------- quizzes

    def start_quiz(self, topic: str, total: int) -> int:
        """Open a quiz attempt; returns its id."""
        with self._tx() as c:
            cur = c.execute(
                "INSERT INTO quiz_attempts (topic, started_at, total) VALUES (?,?,?)",
                (topic, now(), total),
            )
            return int(cur.lastrowid or 0)

    def record_answer(
        self, attempt_id: int | None, topic: str, question_id: str, response: str, correct: bool
    ) -> None:
        """Record one answer (in a quiz attempt, or in review when attempt_id is None)."""
        with self._tx() as c:
            c.execute(
                "INSERT INTO quiz_answers (attempt_id, topic, question_id, response, correct, "
                "answered_at) VALUES (?,?,?,?,?,?)",
                (attempt_id, topic, question_id, response, int(correct), now()),
            )
            if attempt_id is not None and correct:
                c.execute(
                    "UPDATE quiz_attempts SET correct = correct + 1 WHERE id = ?", (attempt_id,)
                )

    def finish_quiz(self, attempt_id: int) -> None:
        """Mark a quiz attempt finished (only finished attempts count for the best score)."""
        with self._tx() as c:
            c.execute("UPDATE quiz_attempts SET finished_at = ? WHERE id = ?", (now(), attempt_id))

    # ---------------------------------------------------------------- labs

    def lab_started(self, topic: str, workspace: str, provider: str) -> None:
        """Record a lab start (keeps 'passed' if it passed before)."""
        with self._tx() as c:
            c.execute(
                "INSERT INTO labs (topic, status, workspace, provider, started_at) "
                "VALUES (?, 'started', ?, ?, ?) ON CONFLICT (topic) DO UPDATE SET "
                "status = CASE WHEN labs.status = 'passed' THEN 'passed' ELSE 'started' END, "
                "workspace = excluded.workspace, provider = excluded.provider, "
                "started_at = excluded.started_at",
                (topic, workspace, provider, now()),
            )

    def record_check(self, topic: str, passed_ids: list[str], failed_ids: list[str]) -> None:
        """Record a `lab check` run; a full pass marks the lab passed for good."""
        import json

        passed = not failed_ids
        with self._tx() as c:
            c.execute(
                "INSERT INTO lab_checks (topic, checked_at, passed, passed_ids, failed_ids) "
                "VALUES (?,?,?,?,?)",
                (topic, now(), int(passed), json.dumps(passed_ids), json.dumps(failed_ids)),
            )
            if passed:
                c.execute(
                    "INSERT INTO labs (topic, status, passed_at) VALUES (?, 'passed', ?) "
                    "ON CONFLICT (topic) DO UPDATE SET status = 'passed', "
                    "passed_at = COALESCE(labs.passed_at, excluded.passed_at)",
                    (topic, now()),
                )

    def next_hint(self, topic: str, available: int) -> int:
        """Count one more hint shown; returns how many have been shown (at most `available`)."""
        with self._tx() as c:
            c.execute(
                "INSERT INTO labs (topic, status) VALUES (?, 'not started') "
                "ON CONFLICT (topic) DO NOTHING",
                (topic,),
            )
            c.execute(
                "UPDATE labs SET hints_shown = MIN(hints_shown + 1, ?) WHERE topic = ?",
                (available, topic),
            )
            row = c.execute("SELECT hints_shown FROM labs WHERE topic = ?", (topic,)).fetchone()
            return int(row[0])

    def reset_hints(self, topic: str) -> None:
        """Start the hints over (after `lab reset`)."""
        with self._tx() as c:
            c.execute("UPDATE labs SET hints_shown = 0 WHERE topic = ?", (topic,))

    def lab_passed(self, topic: str) -> bool:
        """Whether the lab has ever passed all its checks."""
        row = self.conn.execute("SELECT status FROM labs WHERE topic = ?", (topic,)).fetchone()
        return bool(row and row["status"] == "passed")

    def workspace(self, topic: str) -> str | None:
        """Where the learner's workspace for this lab was, if it was ever started."""
        row = self.conn.execute("SELECT workspace FROM labs WHERE topic = ?", (topic,)).fetchone()
        return row["workspace"] if row else None

    # ---------------------------------------------------------------- review cards

    def card(self, topic: str, question_id: str) -> str | None:
        """A question's review card (FSRS JSON), if it has one."""
        row = self.conn.execute(
            "SELECT card FROM review_cards WHERE topic = ? AND question_id = ?",
            (topic, question_id),
        ).fetchone()
        return row["card"] if row else None

    def save_card(
        self, topic: str, question_id: str, card_json: str, due: str, lapsed: bool
    ) -> None:
        """Store a question's review card after an answer."""
        with self._tx() as c:
            c.execute(
                "INSERT INTO review_cards (topic, question_id, card, due, reviews, lapses, "
                "updated_at) VALUES (?, ?, ?, ?, 1, ?, ?) ON CONFLICT (topic, question_id) DO "
                "UPDATE SET card = excluded.card, due = excluded.due, "
                "reviews = review_cards.reviews + 1, "
                "lapses = review_cards.lapses + excluded.lapses, updated_at = excluded.updated_at",
                (topic, question_id, card_json, due, int(lapsed), now()),
            )

    def cards(self) -> list[dict[str, Any]]:
        """Every review card, soonest due first."""
        return [
            dict(r)
            for r in self.conn.execute(
                "SELECT topic, question_id, card, due, reviews, lapses FROM review_cards "
                "ORDER BY due, topic, question_id"
            )
        ]

    # ---------------------------------------------------------------- reading

    def topic(self, topic: str) -> TopicProgress:
        """Everything recorded for one topic."""
        return self.topics([topic])[topic]

    def topics(self, slugs: list[str]) -> dict[str, TopicProgress]:
        """Everything recorded for these topics, in three queries (not three per topic)."""
        out = {slug: TopicProgress(slug) for slug in slugs}
        for row in self.conn.execute(
            "SELECT topic, MAX(finished) AS finished FROM lesson_reads GROUP BY topic"
        ):
            if row["topic"] in out:
                out[row["topic"]].lesson = "read" if row["finished"] else "started"
        for row in self.conn.execute(
            "SELECT topic, MAX(CAST(correct AS REAL) / total) AS best, COUNT(*) AS n "
            "FROM quiz_attempts WHERE finished_at IS NOT NULL AND total > 0 GROUP BY topic"
        ):
            if row["topic"] in out:
                out[row["topic"]].quiz_best = round(float(row["best"]), 4)
                out[row["topic"]].quiz_attempts = int(row["n"])
        for row in self.conn.execute("SELECT topic, status, workspace, hints_shown FROM labs"):
            if row["topic"] in out:
                tp = out[row["topic"]]
                tp.lab = row["status"]
                tp.workspace = row["workspace"]
                tp.hints_shown = int(row["hints_shown"])
        return out

    def answers(self, topic: str | None = None) -> list[dict[str, Any]]:
        """Every recorded answer, oldest first (for exports); `correct` is a bool."""
        sql = "SELECT topic, question_id, response, correct, answered_at FROM quiz_answers"
        params: tuple[str, ...] = ()
        if topic:
            sql += " WHERE topic = ?"
            params = (topic,)
        rows = [dict(r) for r in self.conn.execute(sql + " ORDER BY rowid", params)]
        for row in rows:
            row["correct"] = bool(row["correct"])
        return rows

    def lab_history(self) -> list[dict[str, Any]]:
        """Every recorded `lab check`, oldest first (for exports): `passed` a bool, the
        check ids as lists."""
        rows = [
            dict(r)
            for r in self.conn.execute(
                "SELECT topic, checked_at, passed, passed_ids, failed_ids FROM lab_checks "
                "ORDER BY rowid"
            )
        ]
        import json

        for row in rows:
            row["passed"] = bool(row["passed"])
            for key in ("passed_ids", "failed_ids"):
                try:
                    row[key] = list(json.loads(row[key]))
                except (TypeError, ValueError):
                    row[key] = []
        return rows

    # ---------------------------------------------------------------- settings

    def setting(self, key: str) -> str | None:
        """A learner's setting (their name for exports, say), or None."""
        row = self.conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_setting(self, key: str, value: str) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT INTO settings (key, value, updated_at) VALUES (?,?,?) ON CONFLICT (key) "
                "DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (key, value, now()),
            )


__all__ = ["LAB_STATUSES", "PENDING_NOTICES", "ProgressStore", "TopicProgress", "now"]
