"""The photo function: given {"photo_id": 17}, answer where the photo is served from.

The platform imports this module once per instance (the cold start) and then calls
handler(event, context) for every event that instance serves (warm starts).
"""

import os

import psycopg

# Init code: runs once per instance, on its cold start. Warm invocations reuse both.
conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
SETTINGS = dict(conn.execute("SELECT name, value FROM settings").fetchall())


def handler(event, context):
    row = conn.execute("SELECT path FROM photos WHERE id = %s", (event["photo_id"],)).fetchone()
    if row is None:
        return {"photo_id": event["photo_id"], "url": None}
    return {"photo_id": event["photo_id"], "url": SETTINGS["cdn_base"] + row[0]}
