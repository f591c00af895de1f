"""Link previews: fetch the page behind a URL a user pasted into a chat message."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin, urlsplit

MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)


class Blocked(Exception):
    """The URL points somewhere this service must never fetch."""


def _outside(address: str) -> bool:
    """Whether an address is on the public internet (an IPv4-mapped IPv6 address is
    judged as the IPv4 address it carries)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global


def _checked(url: str, resolve: Callable[[str], list[str]]) -> tuple[str, int, str, str]:
    """(ip, port, host, path) to send to, or Blocked: every address the host has must
    be public, and the one returned is one that was checked."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Blocked(f"{url}: only http and https URLs with a host")
    addresses = resolve(parts.hostname)
    if not addresses:
        raise Blocked(f"{url}: {parts.hostname} has no address")
    inside = [a for a in addresses if not _outside(a)]
    if inside:
        raise Blocked(f"{url}: {parts.hostname} resolves inside ({', '.join(inside)})")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return addresses[0], port, parts.hostname, path


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
        response = send(*_checked(url, resolve))  # every hop, redirects included
        if response.status in REDIRECTS and response.location:
            url = urljoin(url, response.location)
            continue
        return str(response.body)
    raise Blocked(f"more than {MAX_REDIRECTS} redirects")
