"""Presigned URLs: a link that lets its holder do one thing to one object until a time.

sign() is what your API runs when a client asks to upload or download; verify() is what
the object store runs when the link comes back.
"""

import hashlib
import hmac
from urllib.parse import parse_qs, quote, unquote, urlsplit

STORE = "https://storage.example"


def _signature(method, key, expires_at, secret):
    # One field per line, the key percent-encoded so it cannot hold a newline itself:
    # no two different (method, key, expires) give the same bytes.
    message = "\n".join((quote(key, safe=""), str(int(expires_at))))
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def sign(method, key, expires_at, secret):
    """A URL allowing `method` on `key` until `expires_at` (Unix seconds)."""
    signature = _signature(method, key, expires_at, secret)
    return f"{STORE}/{quote(key, safe='/')}?expires={int(expires_at)}&signature={signature}"


def verify(url, method, now, secret):
    """The key this request may act on, or None to refuse it (403)."""
    parts = urlsplit(url)
    params = parse_qs(parts.query, keep_blank_values=True)
    expires, signature = params.get("expires", []), params.get("signature", [])
    if len(expires) != 1 or len(signature) != 1 or not expires[0].isdigit():
        return None
    expires_at = int(expires[0])
    if not now < expires_at:
        return None
    key = unquote(parts.path)[1:]
    expected = _signature(method, key, expires_at, secret)
    if not hmac.compare_digest(expected, signature[0]):
        return None
    return key
