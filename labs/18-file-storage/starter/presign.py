"""Presigned URLs: a link that lets its holder do one thing to one object until a time.

sign() is what your API runs when a client asks to upload or download; verify() is what
the object store runs when the link comes back. This version works for honest clients.
Read README.md's Task 1: an attacker holding one link can do much more with it.
"""

import hashlib
import hmac
from urllib.parse import parse_qs, quote, unquote, urlsplit

STORE = "https://storage.example"


def _signature(key, expires_at, secret):
    message = key + str(int(expires_at))
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def sign(method, key, expires_at, secret):
    """A URL allowing `method` on `key` until `expires_at` (Unix seconds)."""
    signature = _signature(key, expires_at, secret)
    return f"{STORE}/{quote(key, safe='/')}?expires={int(expires_at)}&signature={signature}"


def verify(url, method, now, secret):
    """The key this request may act on, or None to refuse it (403)."""
    parts = urlsplit(url)
    params = parse_qs(parts.query)
    key = unquote(parts.path)[1:]
    expires_at = int(params["expires"][0])
    if params["signature"][0] == _signature(key, expires_at, secret):
        return key
    return None
