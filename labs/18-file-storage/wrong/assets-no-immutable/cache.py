"""Cache-Control for what the web server sends, by path."""

import re

# A build step names assets after a hash of their content: app.3f9a1c7e.js.
HASHED = re.compile(r"[.-][0-9a-f]{8,}\.[a-z0-9]+$")


def cache_control(path):
    """The Cache-Control header for a response to GET `path`."""
    name = path.rsplit("/", 1)[-1]
    if name == "" or name.endswith(".html"):
        # May be stored, but revalidated before every use: a deploy shows at once.
        return "no-cache"
    if HASHED.search(name):
        # New content, new name: this URL's bytes never change.
        return "public, max-age=31536000"
    return "public, max-age=300"
