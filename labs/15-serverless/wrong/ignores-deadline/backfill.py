"""The backfill function: make the missing thumbnails of the photos an event lists.

The event: {"job": "backfill-2f9c", "photo_ids": [12, 31, 40, ...]}. The platform gives
each invocation a time limit (context.get_remaining_time_in_millis() says what is left)
and sends the same event again until the handler returns {"done": True}.
"""

import os
import time

import psycopg

from imaging import make_thumbnail

conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)

RESERVE_MS = 150  # kept back for saving the last thumbnail and returning


def handler(event, context):
    # Progress lives in the database: a photo with a thumbnail is done, whichever
    # invocation (on whichever instance) made it.
    done = {
        photo_id
        for (photo_id,) in conn.execute(
            "SELECT photo_id FROM thumbnails WHERE photo_id = ANY(%s)", (event["photo_ids"],)
        )
    }
    todo = [p for p in event["photo_ids"] if p not in done]
    slowest_ms = 0.0
    for i, photo_id in enumerate(todo):
        started = time.monotonic()
        key = make_thumbnail(photo_id)
        conn.execute(
            "INSERT INTO thumbnails (photo_id, thumb_key) VALUES (%s, %s) "
            "ON CONFLICT (photo_id) DO UPDATE SET thumb_key = excluded.thumb_key",
            (photo_id, key),
        )
        slowest_ms = max(slowest_ms, (time.monotonic() - started) * 1000)
    return {"done": True}
