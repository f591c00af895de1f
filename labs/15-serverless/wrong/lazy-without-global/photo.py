"""The photo function: given {"photo_id": 17}, answer where the photo is served from.

The platform imports this module once per instance (the cold start) and then calls
handler(event, context) for every event that instance serves (warm starts).
"""

import os

import psycopg

_conn = None
_settings = None


def connection():
    """Connect on first use and keep it (so we think)."""
    conn, settings = _conn, _settings  # copies: the module's variables stay None
    if conn is None:
        conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
        settings = dict(conn.execute("SELECT name, value FROM settings").fetchall())
    return conn, settings


def handler(event, context):
    conn, SETTINGS = connection()
    row = conn.execute("SELECT path FROM photos WHERE id = %s", (event["photo_id"],)).fetchone()
    if row is None:
        return {"photo_id": event["photo_id"], "url": None}
    return {"photo_id": event["photo_id"], "url": SETTINGS["cdn_base"] + row[0]}
