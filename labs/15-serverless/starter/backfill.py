"""The backfill function: make the missing thumbnails of the photos an event lists.

The event: {"job": "backfill-2f9c", "photo_ids": [12, 31, 40, ...]}. The platform gives
each invocation a time limit (context.get_remaining_time_in_millis() says what is left)
and sends the same event again until the handler returns {"done": True}.
"""

import os

import psycopg

from imaging import make_thumbnail


def handler(event, context):
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        for photo_id in event["photo_ids"]:
            key = make_thumbnail(photo_id)
            conn.execute(
                "INSERT INTO thumbnails (photo_id, thumb_key) VALUES (%s, %s) "
                "ON CONFLICT (photo_id) DO UPDATE SET thumb_key = excluded.thumb_key",
                (photo_id, key),
            )
    return {"done": True}
