"""Every psycopg API a learner might use; each statement carries a marker."""

import os

import psycopg


def every_api(conn):
    for i in range(3):
        conn.execute("SELECT 'loop', %s::int", (i,))
    cur = conn.cursor()
    cur.executemany("SELECT 'many', %s::int", [(1,), (2,), (3,), (4,)])
    streamed = sum(1 for _ in cur.stream("SELECT 'stream', generate_series(1, 5)"))
    with conn.transaction(), conn.cursor(name="learner_cursor") as named:
        named.execute("SELECT 'named', generate_series(1, 7)")
        fetched = sum(1 for _ in named)
    cur.execute("SELECT 'iter', generate_series(1, 3)")
    iterated = 0
    for _row in cur:
        iterated += 1
    for i in range(2):
        conn.execute("SELECT 'prepared', %s::int", (i,), prepare=True)
    conn.execute("CREATE TEMP TABLE copied (n int)")
    with cur.copy("COPY copied (n) FROM STDIN") as copy:
        for n in range(10):
            copy.write_row((n,))
    with conn.pipeline():
        conn.execute("SELECT 'pipe', 1")
        conn.execute("SELECT 'pipe', 2")
    with psycopg.connect(os.environ["DATABASE_URL"]) as second:
        second.execute("SELECT 'second'")
    return [streamed, fetched, iterated]
