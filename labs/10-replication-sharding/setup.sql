-- The notes app of the replication-sharding lab, on the primary (the replica streams it).
--
-- replay_gate holds no data: the checker locks it, on the replica and then on the
-- primary, to hold the replica's replay back for a few seconds (see checks.py). Your
-- code never needs it.
-- step: Creating the notes table and the checker's replay gate
CREATE TABLE notes (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    author     text NOT NULL,
    body       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notes_author ON notes (author, id);
CREATE TABLE replay_gate (id int PRIMARY KEY);
-- step: Writing 300 notes by 30 authors
INSERT INTO notes (author, body)
SELECT 'user' || (n % 30), 'note ' || n FROM generate_series(1, 300) AS n;
