"""Tokens you can revoke: verify, revoke, authorise, and hand the browser a cookie.

The login service signs access tokens (JWTs) with its private key, RS256. This API only
ever sees the public key (PEM text), passed in as `public_key`. `cache` is a redis-py
client with decode_responses=True; your keys must start with REDIS_KEY_PREFIX.

Everything below runs, and none of it is safe yet. README.md says what the checker will
try; `python play.py` tries your functions by hand.
"""

import os
import time

import jwt

PREFIX = os.environ.get("REDIS_KEY_PREFIX", "")  # e.g. "sdtutor:1a2b3c4d:auth:"

ISSUER = "https://login.example.test"  # who signs the tokens this API accepts
AUDIENCE = "posts-api"  # this API's name: tokens minted for other services carry another


def verify(cache, token, public_key):
    """Return the claims of a good token; raise (jwt.InvalidTokenError) for any other."""
    claims = jwt.decode(token, options={"verify_signature": False})
    if cache.sismember(PREFIX + "revoked", token):
        raise jwt.InvalidTokenError("token revoked")
    return claims


def revoke(cache, token, public_key):
    """Log out: the token is refused from now on."""
    cache.sadd(PREFIX + "revoked", token)


def can(claims, action, post):
    """May the holder of these (verified) claims do `action` on `post`?"""
    if action == "read":
        return True
    return claims.get("role") in ("editor", "admin")


def session_cookie(token, claims):
    """The Set-Cookie header value that hands `token` to the browser."""
    return f"session={token}; Path=/"
