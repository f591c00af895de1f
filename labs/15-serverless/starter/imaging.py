"""The image service's client: make one photo's thumbnail. You do not need to change this.

make_thumbnail(photo_id) asks the image service (at IMAGE_SERVICE_URL) to render the
thumbnail and store it, and returns the storage key to save in `thumbnails.thumb_key`.
It takes about 0.1 s. The checker runs the image service itself and counts every
thumbnail it is asked for, with the moment it was asked (sent along, so that a checker
slow to answer on a busy machine is not counted against you); without IMAGE_SERVICE_URL
(on your own machine) it waits 0.1 s and makes up a key.
"""

import json
import os
import time
import urllib.request


def make_thumbnail(photo_id: int) -> str:
    """Render one photo's thumbnail; returns its storage key."""
    base = os.environ.get("IMAGE_SERVICE_URL")
    if not base:
        time.sleep(0.1)
        return f"thumbs/{int(photo_id)}-local.jpg"
    request = urllib.request.Request(
        f"{base}/thumbnails/{int(photo_id)}",
        method="POST",
        headers={"X-Asked-At": f"{time.monotonic():.6f}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.loads(response.read())["key"])
