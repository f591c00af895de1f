"""Try your auth.py by hand, with a key pair and tokens made here.

    python play.py              verify a good token and a forged one, revoke, cookie
    python play.py can          the permission table your can() gives

Makes an RS256 key pair (the login service's), signs a token with it, and calls your
functions as the app would, printing what each returned and the keys under your prefix
with their TTLs. The Redis URL and key prefix come from REDIS_URL and REDIS_KEY_PREFIX
when they are set, else from `sdtutor lab info auth`. You do not need to change this file.
"""

import json
import os
import subprocess
import sys
import time
import uuid


def lab_settings():
    """The lab's Redis URL and key prefix."""
    if os.environ.get("REDIS_URL") and os.environ.get("REDIS_KEY_PREFIX"):
        return os.environ["REDIS_URL"], os.environ["REDIS_KEY_PREFIX"]
    try:
        info = json.loads(
            subprocess.run(
                ["sdtutor", "lab", "info", "auth", "--json"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
    except (OSError, subprocess.CalledProcessError, ValueError) as exc:
        sys.exit(f"Cannot read the lab's settings ({exc}). Start it: sdtutor lab start auth")
    redis_info = info.get("services", {}).get("redis", {})
    prefix = redis_info.get("prefix") or redis_info.get("env", {}).get("REDIS_KEY_PREFIX")
    if not prefix:
        sys.exit("`sdtutor lab info auth --json` gives no key prefix; set REDIS_KEY_PREFIX.")
    return redis_info["url"], prefix


def keypair():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public.decode()


def attempt(label, call, token=""):
    try:
        result = call()
    except Exception as exc:
        print(f"{label}:\n    raised {type(exc).__name__}: {exc}")
        return
    if isinstance(result, dict) and "sub" in result:
        shown = f"accepted (sub {result['sub']!r}, role {result.get('role')!r})"
    else:
        shown = f"returned {json.dumps(result)}"
    if token:
        shown = shown.replace(token, "<token>")
    print(f"{label}:\n    {shown}")


def show_keys(client, prefix):
    keys = sorted(client.scan_iter(match=prefix + "*", count=500))
    print(f"\nkeys under {prefix}: {len(keys)}")
    for key in keys[:20]:
        ttl = client.ttl(key)
        print(f"   {key}  ({client.type(key)}, {'no expiry' if ttl == -1 else f'TTL {ttl} s'})")


def permission_table(learner):
    print(f"{'role':<10} {'action':<8} {'own post':<9} {'others':<6}")
    for role in ("viewer", "editor", "admin", "intern"):
        for action in ("read", "edit", "delete"):
            claims = {"sub": "u17", "role": role}
            own = learner.can(claims, action, {"id": 1, "author": "u17"})
            other = learner.can(claims, action, {"id": 2, "author": "u99"})
            print(f"{role:<10} {action:<8} {str(own):<9} {str(other):<6}")


def main(argv):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    if argv[:1] == ["can"]:
        import auth as learner

        permission_table(learner)
        return
    redis_url, prefix = lab_settings()
    os.environ["REDIS_KEY_PREFIX"] = prefix  # before auth.py reads it

    import jwt
    import redis

    import auth as learner

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    private, public = keypair()
    now = int(time.time())
    claims = {
        "iss": learner.ISSUER,
        "aud": learner.AUDIENCE,
        "sub": "u17",
        "role": "editor",
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + 600,
    }
    token = jwt.encode(claims, private, algorithm="RS256")
    attacker, _ = keypair()
    forged = jwt.encode({**claims, "role": "admin"}, attacker, algorithm="RS256")
    expired = jwt.encode({**claims, "exp": now - 3600}, private, algorithm="RS256")

    attempt("verify(good token)", lambda: learner.verify(client, token, public))
    attempt("verify(signed by another key)", lambda: learner.verify(client, forged, public))
    attempt("verify(expired an hour ago)", lambda: learner.verify(client, expired, public))
    attempt("revoke(good token)", lambda: learner.revoke(client, token, public))
    attempt("verify(revoked token)", lambda: learner.verify(client, token, public))
    attempt("session_cookie(good token)", lambda: learner.session_cookie(token, claims), token)
    print(f"(the token has {claims['exp'] - time.time():.0f} s left)")
    show_keys(client, prefix)


if __name__ == "__main__":
    main(sys.argv[1:])
