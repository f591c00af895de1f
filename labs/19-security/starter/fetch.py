"""Link previews: fetch the page behind a URL a user pasted into a chat message."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin, urlsplit

MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)


class Blocked(Exception):
    """The URL points somewhere this service must never fetch."""


def fetch_preview(
    url: str,
    resolve: Callable[[str], list[str]],
    send: Callable[[str, int, str, str], Any],
) -> str:
    """The body of the page at `url`, following redirects; Blocked for anything inside.

    resolve(host) -> the host's IP addresses as strings (it is DNS: a name may have
    several, and numbers spelled oddly resolve too). send(ip, port, host, path) makes
    one GET to that IP address, with `host` as the Host header, and returns an object
    with .status, .location (the Location header or None) and .body.
    """
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        host = parts.hostname or ""
        # The metadata service and this machine are off limits.
        if host in ("169.254.169.254", "127.0.0.1", "localhost"):
            raise Blocked(f"{url} points inside")
        ip = resolve(host)[0]
        port = parts.port or (443 if parts.scheme == "https" else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        response = send(ip, port, host, path)
        if response.status in REDIRECTS and response.location:
            url = urljoin(url, response.location)
            continue
        return str(response.body)
    raise Blocked(f"more than {MAX_REDIRECTS} redirects")
