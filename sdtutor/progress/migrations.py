"""Ordered, named schema migrations for the progress store.

Append only: never edit a migration that has shipped. Each runs in its own transaction
and is recorded in `schema_migrations`, so running them again does nothing.
"""

from __future__ import annotations

MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "0001_initial",
        """
        CREATE TABLE lesson_reads (
            topic       TEXT NOT NULL,
            read_at     TEXT NOT NULL,
            sections    INTEGER NOT NULL,
            finished    INTEGER NOT NULL
        );
        CREATE INDEX lesson_reads_topic ON lesson_reads (topic);
        CREATE TABLE quiz_attempts (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            topic       TEXT NOT NULL,
            started_at  TEXT NOT NULL,
            finished_at TEXT,
            correct     INTEGER NOT NULL DEFAULT 0,
            total       INTEGER NOT NULL
        );
        CREATE INDEX quiz_attempts_topic ON quiz_attempts (topic);
        CREATE TABLE quiz_answers (
            attempt_id  INTEGER REFERENCES quiz_attempts (id),
            topic       TEXT NOT NULL,
            question_id TEXT NOT NULL,
            response    TEXT NOT NULL,
            correct     INTEGER NOT NULL,
            answered_at TEXT NOT NULL
        );
        CREATE INDEX quiz_answers_question ON quiz_answers (topic, question_id);
        CREATE TABLE labs (
            topic       TEXT PRIMARY KEY,
            status      TEXT NOT NULL,
            workspace   TEXT,
            provider    TEXT,
            started_at  TEXT,
            passed_at   TEXT,
            hints_shown INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE lab_checks (
            topic       TEXT NOT NULL,
            checked_at  TEXT NOT NULL,
            passed      INTEGER NOT NULL,
            passed_ids  TEXT NOT NULL,
            failed_ids  TEXT NOT NULL
        );
        CREATE INDEX lab_checks_topic ON lab_checks (topic);
        """,
    ),
    (
        "0002_review_cards",
        """
        CREATE TABLE review_cards (
            topic       TEXT NOT NULL,
            question_id TEXT NOT NULL,
            card        TEXT NOT NULL,
            due         TEXT NOT NULL,
            reviews     INTEGER NOT NULL DEFAULT 0,
            lapses      INTEGER NOT NULL DEFAULT 0,
            updated_at  TEXT NOT NULL,
            PRIMARY KEY (topic, question_id)
        );
        CREATE INDEX review_cards_due ON review_cards (due);
        """,
    ),
    (
        "0003_reading_positions",
        """
        CREATE TABLE reading_positions (
            topic       TEXT PRIMARY KEY,
            section     INTEGER NOT NULL,
            line        INTEGER NOT NULL DEFAULT 0,
            updated_at  TEXT NOT NULL
        );
        """,
    ),
    (
        "0004_settings",
        """
        CREATE TABLE settings (
            key         TEXT PRIMARY KEY,
            value       TEXT NOT NULL,
            updated_at  TEXT NOT NULL
        );
        """,
    ),
)

__all__ = ["MIGRATIONS"]
