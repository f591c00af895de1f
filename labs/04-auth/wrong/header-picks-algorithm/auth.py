"""Tokens you can revoke: verify, revoke, authorise, and hand the browser a cookie.

The login service signs access tokens (JWTs) with its private key, RS256. This API only
ever sees the public key (PEM text), passed in as `public_key`. `cache` is a redis-py
client with decode_responses=True; your keys must start with REDIS_KEY_PREFIX.
"""

import base64
import hashlib
import hmac
import json
import os
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

import jwt

PREFIX = os.environ.get("REDIS_KEY_PREFIX", "")  # e.g. "sdtutor:1a2b3c4d:auth:"

ISSUER = "https://login.example.test"  # who signs the tokens this API accepts
AUDIENCE = "posts-api"  # this API's name: tokens minted for other services carry another
LEEWAY = 30  # seconds of clock skew allowed between the login service and us


def _revoked_key(jti):
    return f"{PREFIX}revoked:{jti}"


def _b64decode(segment):
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _signature_ok(alg, signing_input, signature, public_key):
    """Support both kinds of token the company uses: HS256 (internal) and RS256."""
    if alg == "HS256":
        expected = hmac.new(public_key.encode(), signing_input, hashlib.sha256).digest()
        return hmac.compare_digest(expected, signature)
    if alg == "RS256":
        key = serialization.load_pem_public_key(public_key.encode())
        try:
            key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return False
        return True
    return False


def verify(cache, token, public_key):
    """Return the claims of a good token; raise (jwt.InvalidTokenError) for any other.

    Written by hand: a JWT is only base64 and a signature.
    """
    head, body, signature = token.split(".")
    header = json.loads(_b64decode(head))
    if not _signature_ok(header.get("alg"), f"{head}.{body}".encode(), _b64decode(signature), public_key):
        raise jwt.InvalidSignatureError("bad signature")
    claims = json.loads(_b64decode(body))
    now = time.time()
    if "exp" not in claims or claims["exp"] < now - LEEWAY:
        raise jwt.ExpiredSignatureError("expired")
    if claims.get("nbf", 0) > now + LEEWAY:
        raise jwt.ImmatureSignatureError("not yet valid")
    audiences = claims.get("aud")
    audiences = [audiences] if isinstance(audiences, str) else audiences or []
    if AUDIENCE not in audiences:
        raise jwt.InvalidAudienceError("wrong audience")
    if claims.get("iss") != ISSUER:
        raise jwt.InvalidIssuerError("wrong issuer")
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
