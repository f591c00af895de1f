"""Tokens you can revoke: verify, revoke, authorise, and hand the browser a cookie.

The login service signs access tokens (JWTs) with its private key, RS256. This API only
ever sees the public key (PEM text), passed in as `public_key`. `cache` is a redis-py
client with decode_responses=True; your keys must start with REDIS_KEY_PREFIX.
"""

import os
import time

import jwt

PREFIX = os.environ.get("REDIS_KEY_PREFIX", "")  # e.g. "sdtutor:1a2b3c4d:auth:"

ISSUER = "https://login.example.test"  # who signs the tokens this API accepts
AUDIENCE = "posts-api"  # this API's name: tokens minted for other services carry another
LEEWAY = 300  # seconds of clock skew allowed between the login service and us


def _revoked_key(jti):
    return f"{PREFIX}revoked:{jti}"


def verify(cache, token, public_key):
    """Return the claims of a good token; raise (jwt.InvalidTokenError) for any other."""
    claims = jwt.decode(
        token,
        public_key,
        algorithms=["RS256"],  # pinned: the token's header does not choose
        audience=AUDIENCE,
        issuer=ISSUER,
        leeway=LEEWAY,
        options={"require": ["exp", "iat", "jti", "sub"]},
    )
    if cache.exists(_revoked_key(claims["jti"])):
        raise jwt.InvalidTokenError("token revoked")
    return claims


def revoke(cache, token, public_key):
    """Log out: the token is refused from now on, and Redis forgets it once it expires."""
    claims = verify(cache, token, public_key)
    # The token is accepted until exp + LEEWAY: remember the revocation that long.
    ttl = int(claims["exp"] + LEEWAY - time.time()) + 1
    cache.set(_revoked_key(claims["jti"]), "1", ex=max(ttl, 1))


ROLES = {"viewer", "editor", "admin"}


def can(claims, action, post):
    """May the holder of these (verified) claims do `action` on `post`? Deny by default."""
    role = claims.get("role")
    if role not in ROLES:
        return False
    if action == "read":
        return True
    if action == "edit":
        return role == "admin" or (role == "editor" and post["author"] == claims["sub"])
    if action == "delete":
        return role == "admin"
    return False


COOKIE = "__Host-session"


def session_cookie(token, claims):
    """The Set-Cookie header value that hands `token` to the browser."""
    max_age = max(0, int(claims["exp"] - time.time()))
    return f"{COOKIE}={token}; Max-Age={max_age}; Path=/; Secure; HttpOnly; SameSite=Lax"
