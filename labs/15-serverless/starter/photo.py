"""The photo function: given {"photo_id": 17}, answer where the photo is served from.

The platform imports this module once per instance (the cold start) and then calls
handler(event, context) for every event that instance serves (warm starts).
"""

import os

import psycopg


def handler(event, context):
    # Every invocation connects to PostgreSQL and loads the settings again.
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        settings = dict(conn.execute("SELECT name, value FROM settings").fetchall())
        row = conn.execute(
            "SELECT path FROM photos WHERE id = %s", (event["photo_id"],)
        ).fetchone()
    if row is None:
        return {"photo_id": event["photo_id"], "url": None}
    return {"photo_id": event["photo_id"], "url": settings["cdn_base"] + row[0]}
