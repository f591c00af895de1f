"""Checks for the auth lab: try the classic attacks, then read Redis.

Each check makes its own RS256 key pair and mints its own tokens (good ones, and the
forgeries of the 2015 JWT disclosures), hands the learner's verify() the public key as
PEM text, and judges what it accepts and refuses. Revocation is judged from Redis: the
keys revoke() wrote, read from outside with their TTLs, and whether a revoked token
(also re-spelled with padding) is refused afterwards. Authorisation is a table of roles
x ownership x actions; the cookie is parsed attribute by attribute.

Tokens carry real times with wide margins (expired an hour ago, valid for another ten
minutes), so no verdict turns on how long a call took.
"""

from __future__ import annotations

import base64
import email.utils
import json
import time
import uuid
from pathlib import Path
from typing import Any

from sdtutor.lab.checks import CheckContext, Evidence, Fail, Pass, check

FILE = "auth.py"
HARNESS = Path(__file__).with_name("harness.py")
HARNESS_FILE = "sdtutor_auth_harness.py"  # its name in the sandbox, beside auth.py

ISSUER = "https://login.example.test"
AUDIENCE = "posts-api"
USER, OTHER_USER = "u17", "u99"

MAX_LEEWAY = 60
"""Clock skew a verifier may allow: under a minute (the lesson's advice)."""
SHORTLY_EXPIRED = 150
"""A token that expired this long ago must be refused whatever the (allowed) leeway."""
TTL_SLACK = 3
"""Seconds a revocation key may fall short of the token's remaining life (whole-second
rounding and the time between revoke() and the checker's reading)."""
COOKIE_SLACK = 10


# ------------------------------------------------------------------ tokens


def _keypair() -> tuple[Any, str]:
    """A fresh RSA key pair: the private key (to sign) and the public key as PEM text."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public.decode()


_ATTACKER: list[Any] = []


def _attacker() -> Any:
    """Another private key, for forgeries: made once per process (a key pair takes a
    tenth of a second), since only its being another key matters."""
    if not _ATTACKER:
        _ATTACKER.append(_keypair()[0])
    return _ATTACKER[0]


def _claims(now: int, **changes: Any) -> dict[str, Any]:
    """A good token's claims; `changes` override them (None removes a claim)."""
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": USER,
        "role": "editor",
        "jti": uuid.uuid4().hex,
        "iat": now - 300,
        "nbf": now - 300,
        "exp": now + 600,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _mint(private: Any, claims: dict[str, Any]) -> str:
    import jwt

    return str(jwt.encode(claims, private, algorithm="RS256", headers={"kid": "login-1"}))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def _forgeries(private: Any, public: str, now: int) -> list[tuple[str, str, str]]:
    """(name, token, what accepting it means) for each classic forgery."""
    import hashlib
    import hmac

    claims = _claims(now, role="admin")
    payload = _segment(claims)
    none = _segment({"alg": "none", "typ": "JWT"}) + "." + payload + "."
    hs_header = _segment({"alg": "HS256", "typ": "JWT"})
    signing_input = f"{hs_header}.{payload}".encode()
    hs256 = f"{hs_header}.{payload}." + _b64(
        hmac.new(public.encode(), signing_input, hashlib.sha256).digest()
    )
    other_key = _mint(_attacker(), claims)
    good = _mint(private, _claims(now))
    head, body, signature = good.split(".")
    edited = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    edited["role"] = "admin"
    tampered = f"{head}.{_segment(edited)}.{signature}"
    stripped = f"{head}.{body}."
    return [
        (
            "alg none, no signature",
            none,
            "a token whose header says alg 'none' carries no signature at all: anyone can "
            "write one",
        ),
        (
            "HS256, signed with the public key",
            hs256,
            "its header picked HMAC, and the public key (which everyone has) served as "
            "the HMAC secret",
        ),
        (
            "signed with another key",
            other_key,
            "it was signed with an attacker's own private key, not the login service's",
        ),
        (
            "payload edited after signing",
            tampered,
            "its role was changed from 'editor' to 'admin' after it was signed",
        ),
        (
            "signature cut off",
            stripped,
            "a good token's header and payload with the signature removed",
        ),
    ]


# ------------------------------------------------------------------ running the learner


def _require_ok(ctx: CheckContext, run: Any, call: str) -> None:
    """Fail with a teaching message when the learner's call raised or never returned."""
    if run.timed_out or run.limit:
        what = "did not return within its time limit" if run.timed_out else "hit a limit"
        raise Fail(
            f"{call} {what} ({run.error}). Look for a loop, or a Redis call that waits "
            f"(BLPOP, a lock) where none is needed.",
            Evidence("its output", "text", run.output or "(none)"),
        )
    if run.ok:
        return
    error = str(run.error or "")
    if "noperm" in error.lower() or "no permissions" in error.lower():
        prefix = ctx.prefix("redis")
        raise Fail(
            f"Redis refused {call}: {error}. The lab's Redis user may only touch keys that "
            f"start with os.environ['REDIS_KEY_PREFIX'] (here '{prefix}'): build every key "
            f"from it.",
            Evidence("traceback", "text", run.traceback or error),
        )
    raise Fail(
        f"{call} raised an error: {error}",
        Evidence("traceback", "text", run.traceback or run.output or error),
    )


def _verify(ctx: CheckContext, public: str, tokens: list[str]) -> list[dict[str, Any]]:
    """What verify(cache, token, public_key) did with each token, in one process."""
    ctx.read(FILE)  # a missing file fails here, with what to do
    run = ctx.run(
        HARNESS_FILE,
        "verify_many",
        FILE,
        public,
        tokens,
        clients=("redis",),
        files={HARNESS_FILE: HARNESS},
    )
    _require_ok(ctx, run, "verify(cache, token, public_key)")
    answers = run.value
    if not isinstance(answers, list) or len(answers) != len(tokens):
        raise Fail(f"verify could not be called for each token (got {answers!r:.200}).")
    return answers


def _no_raise(answers: list[dict[str, Any]], rows: list[Any]) -> None:
    """Fail when verify() signalled a refusal by returning None or False, not raising."""
    quiet = [a for a in answers if a.get("accepted") and a.get("claims") in (None, False)]
    if quiet:
        raise Fail(
            f"verify() returned {quiet[0].get('claims')} for a token it should refuse, "
            f"instead of raising. A caller that forgets to test the answer carries on as "
            f"if the token were good: raise (jwt.InvalidTokenError, or let PyJWT's error "
            f"through), so a bad token can never be mistaken for a good one.",
            _verdicts(rows),
        )


def _said(answer: dict[str, Any]) -> str:
    if answer.get("accepted") and answer.get("claims") in (None, False):
        return f"returned {answer.get('claims')}"
    if answer.get("accepted"):
        claims = answer.get("claims")
        return "accepted" + (f": role {claims.get('role')!r}" if isinstance(claims, dict) else "")
    return f"refused ({answer.get('error', '')})"


def _verdicts(rows: list[tuple[str, str, dict[str, Any], str]]) -> Evidence:
    """rows: (token, description, answer, expected)."""
    return Evidence(
        "what verify() did with each token",
        "table",
        (
            ("token", "should be", "verify()"),
            [(name, want, _said(answer)) for _, name, answer, want in rows],
        ),
    )


def _must_accept(good: list[tuple[str, str, dict[str, Any]]], why: str) -> None:
    """Fail when verify refused a good token (or returned something not its claims)."""
    for name, token, answer in good:
        if not answer.get("accepted"):
            raise Fail(
                f"verify() refused {name}: {answer.get('error')}. {why}",
                Evidence("the token", "text", token),
            )
        claims = answer.get("claims")
        want = _decoded(token)
        if not isinstance(claims, dict) or any(
            claims.get(k) != want.get(k) for k in ("sub", "role", "jti", "exp")
        ):
            raise Fail(
                f"verify() accepted {name} but returned {json.dumps(claims)[:160]} instead "
                f"of its claims (a dict with sub, role, jti, exp...). Return what "
                f"jwt.decode returns.",
            )


def _decoded(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    value = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return value if isinstance(value, dict) else {}


# ------------------------------------------------------------------ checks


@check("signature")
def signature(ctx: CheckContext) -> Pass:
    """Good tokens pass; every classic forgery is refused."""
    private, public = _keypair()
    now = int(time.time())
    good = _mint(private, _claims(now))
    forged = _forgeries(private, public, now)
    answers = _verify(ctx, public, [good] + [token for _, token, _ in forged])
    _must_accept(
        [("a good token (RS256, by the login service, valid for 10 minutes)", good, answers[0])],
        f"Verify with the public key, algorithms=['RS256'], audience {AUDIENCE!r} and "
        f"issuer {ISSUER!r}; the message above says what it objected to.",
    )
    rows = [(good, "good token", answers[0], "accepted")]
    rows += [(t, n, a, "refused") for (n, t, _), a in zip(forged, answers[1:], strict=True)]
    _no_raise(answers[1:], rows)
    accepted = [
        (name, meaning)
        for (name, _, meaning), answer in zip(forged, answers[1:], strict=True)
        if answer.get("accepted")
    ]
    if accepted:
        name, meaning = accepted[0]
        others = (
            f" ({len(accepted) - 1} other forger{'y was' if len(accepted) == 2 else 'ies were'} "
            f"accepted too: see the table.)"
            if len(accepted) > 1
            else ""
        )
        names = [n for n, _ in accepted]
        if "signed with another key" in names or "payload edited after signing" in names:
            advice = (
                "Decoding is not verifying: check the signature against the public key, "
                "with the one algorithm you expect (RS256)."
            )
        else:
            advice = (
                "The signature is checked, but the token's header chooses how: let the "
                "verifier choose the algorithm (pin RS256) and refuse every other."
            )
        raise Fail(
            f"verify() accepted a forged token ({name}): {meaning}. Whoever holds such a "
            f"token is whoever it claims, with any role.{others} {advice}",
            _verdicts(rows),
        )
    return Pass(
        f"A good token was accepted and all {len(forged)} forgeries were refused: alg none, "
        f"HS256 signed with the public key, another key, an edited payload, no signature.",
        _verdicts(rows),
    )


@check("claims")
def claims_check(ctx: CheckContext) -> Pass:
    """Expiry, not-before, audience, issuer: the claims a good signature does not prove."""
    private, public = _keypair()
    now = int(time.time())
    good = [
        (
            f"a token whose aud lists two services, {AUDIENCE!r} among them",
            _mint(private, _claims(now, aud=["billing-api", AUDIENCE])),
        ),
        ("a token with 45 seconds left to live", _mint(private, _claims(now, exp=now + 45))),
    ]
    bad = [
        (
            "expired an hour ago",
            _claims(now, iat=now - 7200, nbf=now - 7200, exp=now - 3600),
            "a token that expired an hour ago was accepted: exp is not being checked, so a "
            "stolen token works forever. Let the library check exp (never turn verify_exp "
            "off).",
        ),
        (
            f"expired {SHORTLY_EXPIRED} s ago",
            _claims(now, iat=now - 900, nbf=now - 900, exp=now - SHORTLY_EXPIRED),
            f"a token that expired {SHORTLY_EXPIRED} s ago was accepted: the clock-skew "
            f"allowance (leeway) is too generous. Servers' clocks differ by seconds, not "
            f"minutes: keep the leeway under {MAX_LEEWAY} s.",
        ),
        (
            "not valid for another hour (nbf)",
            _claims(now, iat=now, nbf=now + 3600, exp=now + 4200),
            "a token whose nbf (not before) is an hour away was accepted: it was issued "
            "for later. Check nbf too.",
        ),
        (
            "minted for another service (aud 'billing-api')",
            _claims(now, aud="billing-api"),
            f"a token minted for another service (aud 'billing-api') was accepted, so a "
            f"token leaked from any service can be replayed against this API. Require the "
            f"audience {AUDIENCE!r}.",
        ),
        (
            "from another issuer",
            _claims(now, iss="https://login.attacker.test"),
            f"a token whose iss is not {ISSUER!r} was accepted. Require the issuer too: "
            f"keys are often shared by several issuers (staging, other tenants).",
        ),
        (
            "with no exp at all",
            _claims(now, exp=None),
            "a token with no exp was accepted: it would be valid forever. A token without "
            "an expiry must be refused, not trusted (most libraries only check exp when it "
            "is there: make it required).",
        ),
    ]
    tokens = [token for _, token in good] + [_mint(private, c) for _, c, _ in bad]
    answers = _verify(ctx, public, tokens)
    rows = [(t, n, a, "accepted") for (n, t), a in zip(good, answers, strict=False)]
    rows += [
        (t, n, a, "refused")
        for (n, _, _), t, a in zip(bad, tokens[len(good) :], answers[len(good) :], strict=True)
    ]
    _no_raise(answers[len(good) :], rows)
    accepted = [
        meaning
        for (_, _, meaning), answer in zip(bad, answers[len(good) :], strict=True)
        if answer.get("accepted")
    ]
    if accepted:
        more = f" ({len(accepted) - 1} more in the table.)" if len(accepted) > 1 else ""
        raise Fail(
            f"A signature proves who wrote a token, not that it holds now: {accepted[0]}{more}",
            _verdicts(rows),
        )
    try:
        _must_accept(
            [(n, t, a) for (n, t), a in zip(good, answers, strict=False)],
            "Those are good tokens: an aud may be a list, and a token is good until its exp.",
        )
    except Fail as exc:
        raise Fail(exc.message, *exc.evidence, _verdicts(rows)) from None
    return Pass(
        f"Refused: expired (an hour ago and {SHORTLY_EXPIRED} s ago), not yet valid, "
        f"another audience, another issuer, no exp. Accepted: an aud list that names "
        f"{AUDIENCE!r}, a token with 45 s left.",
        _verdicts(rows),
    )


# ------------------------------------------------------------------ revocation


def _snapshot(ctx: CheckContext) -> dict[str, tuple[str, float]]:
    """Every key under the prefix: {key: (type, seconds to live; -1 never)}, read now."""
    client = ctx.redis()
    found: dict[str, tuple[str, float]] = {}
    for key, kind, _ in ctx.keys("*"):
        ms = client.pttl(key)
        if ms == -2:
            continue  # expired between SCAN and PTTL
        found[key] = (kind, -1.0 if ms < 0 else ms / 1000)
    return found


def _clear(ctx: CheckContext) -> None:
    keys = list(_snapshot(ctx))
    if keys:
        ctx.redis().delete(*keys)


def _keys_table(keys: dict[str, tuple[str, float]], title: str) -> Evidence:
    rows = [
        (k, t, "never expires" if ttl < 0 else f"{ttl:.0f} s")
        for k, (t, ttl) in sorted(keys.items())
    ]
    return Evidence(title, "table", (("key", "type", "TTL"), rows or [("(none)", "", "")]))


MARK = "sdtutor-auth-mark"  # harness.MARK: ECHOed on the wire between the steps


WRITES = {
    *("SET", "SETEX", "PSETEX", "SETNX", "GETSET", "GETEX", "MSET", "MSETNX", "APPEND"),
    *("INCR", "INCRBY", "SETRANGE", "SADD", "HSET", "HSETNX", "HMSET", "LPUSH", "RPUSH"),
    *("ZADD", "EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT", "JSON.SET", "COPY", "RENAME"),
    *("EVAL", "EVALSHA", "FCALL"),  # a script may write the keys it is given
}
"""Commands that store a key or its expiry: what a revoke() may have written."""


def _touched(commands: list[list[str]], prefix: str) -> dict[str, set[str]]:
    """The keys under the prefix that each marked step wrote (or set an expiry on)."""
    steps: dict[str, set[str]] = {}
    current = ""
    for command in commands:
        if len(command) == 2 and command[0] == "ECHO" and command[1].startswith(MARK):
            current = command[1].removeprefix(MARK).strip()
            steps.setdefault(current, set())
        elif current and command and command[0] in WRITES:
            steps[current].update(a for a in command[1:] if a.startswith(prefix))
    return steps


def _judge_ttls(name: str, keys: dict[str, tuple[str, float]], remaining: float) -> None:
    """Fail unless every key revoke() wrote for one token lives as long as the token."""
    table = _keys_table(keys, f"keys revoke() wrote for {name}")
    forever = [k for k, (_, ttl) in keys.items() if ttl < 0]
    if forever:
        raise Fail(
            f"revoke() stored {forever[0]} with no expiry. Revoked tokens pile up forever, "
            f"though each one is worthless once it expires: give each revocation its own "
            f"key and let it expire when the token would ({name} has {remaining:.0f} s "
            f"left).",
            table,
        )
    for key, (_, ttl) in keys.items():
        if ttl < remaining - TTL_SLACK:
            raise Fail(
                f"revoke() stored {key} with {ttl:.0f} s to live, but {name} is valid for "
                f"another {remaining:.0f} s: once the key expires, the revoked token is "
                f"accepted again for {remaining - ttl:.0f} s. Compute the TTL from the "
                f"token's exp.",
                table,
            )
        if ttl > remaining + MAX_LEEWAY + TTL_SLACK:
            raise Fail(
                f"revoke() stored {key} with {ttl:.0f} s to live, but {name} expires in "
                f"{remaining:.0f} s: the key outlives the token by {ttl - remaining:.0f} s "
                f"and Redis holds it for nothing (a fixed TTL, or the token's whole "
                f"lifetime from iat, is not what is left of it). Let it expire when the "
                f"token does (plus your leeway, if any).",
                table,
            )


@check("revocation")
def revocation(ctx: CheckContext) -> Pass:
    """A revoked token is refused; its key lives exactly as long as the token would."""
    _clear(ctx)
    ctx.read(FILE)
    private, public = _keypair()
    now = int(time.time())
    first = _claims(now, iat=now - 1200, nbf=now - 1200, exp=now + 600)
    second = _claims(now, iat=now - 780, nbf=now - 780, exp=now + 2820, sub="u23")
    kept = _claims(now, exp=now + 900)  # same user, another session: never revoked
    a, b, c = (_mint(private, x) for x in (first, second, kept))
    # An attacker "logs out" someone else: a token it signed itself, naming the victim's
    # jti (token C's) and an expiry ten years away.
    forged = _mint(_attacker(), _claims(now, jti=kept["jti"], exp=now + 10 * 365 * 86400))
    padded = a + "=="  # the same signature bytes, spelled differently
    run = ctx.run(
        HARNESS_FILE,
        "revocation_story",
        FILE,
        public,
        {"A": a, "B": b, "C": c, "forged": forged},
        clients=("redis",),
        files={HARNESS_FILE: HARNESS},
    )
    _require_ok(ctx, run, "verify() and revoke()")
    story = run.value if isinstance(run.value, dict) else {}
    before = story.get("before") or []
    if len(before) != 3:
        raise Fail(f"verify() and revoke() could not be called as expected (got {story!r:.200}).")
    _must_accept(
        [(f"a good token ({n})", t, x) for n, t, x in zip("ABC", (a, b, c), before, strict=True)],
        "The signature and claims checks say more; revocation can only be judged on tokens "
        "that verify() accepts.",
    )
    for name in ("A", "B"):
        step = story.get(f"revoke {name}") or {}
        if not step.get("ok"):
            error = str(step.get("error", ""))
            if "noperm" in error.lower():
                raise Fail(
                    f"Redis refused revoke(token {name}): {error}. The lab's Redis user may "
                    f"only touch keys that start with os.environ['REDIS_KEY_PREFIX'] (here "
                    f"'{ctx.prefix('redis')}'): build every key from it."
                )
            raise Fail(f"revoke(token {name}) raised {error}, for a good token.")
    keys = _snapshot(ctx)
    at = time.time()
    left = {"A": first["exp"] - at, "B": second["exp"] - at}
    touched = _touched(run.server["redis"].commands, ctx.prefix("redis"))
    written = {
        name: {k: keys[k] for k in touched.get(f"revoke {name}", set()) if k in keys}
        for name in ("A", "B", "forged")
    }
    answers = story.get("after") or [{}] * 4
    rows = [
        (a, "A, revoked", answers[0], "refused"),
        (padded, "A with '==' appended", answers[1], "refused"),
        (b, "B, revoked", answers[2], "refused"),
        (c, "C, same user, not revoked", answers[3], "accepted"),
    ]
    everything = _keys_table(keys, "keys under your prefix at the end")
    _no_raise(answers[:3], rows)
    if answers[0].get("accepted") or answers[2].get("accepted"):
        which = "A" if answers[0].get("accepted") else "B"
        stored = (
            "revoke() wrote nothing to Redis"
            if not keys
            else "revoke() did write to Redis, but verify() does not look there (or looks "
            "under another key)"
        )
        raise Fail(
            f"After revoke(token {which}), verify(token {which}) still accepted it: {stored}. "
            f"A signed token stays valid until exp unless every verify() asks a shared "
            f"store whether it was revoked.",
            _verdicts(rows),
            everything,
        )
    if not written["A"] and touched.get("revoke A"):
        gone = sorted(touched["revoke A"])[0]
        raise Fail(
            f"revoke(token A) wrote {gone}, but it was gone when the checker looked a moment "
            f"later: its TTL is far shorter than the {left['A']:.0f} s the token has left "
            f"(milliseconds for seconds?). Until exp, the revocation must stay.",
            everything,
        )
    if not written["A"]:
        raise Fail(
            "revoke() wrote no key under your prefix, yet the revoked token is refused. The "
            "revocation must live in Redis, where every app server's verify() can see it.",
            everything,
        )
    _judge_ttls("token A", written["A"], left["A"])
    shared = set(written["A"]) & set(written["B"])
    if shared or not written["B"]:
        name = sorted(shared or written["A"])[0]
        raise Fail(
            f"Tokens A and B were both revoked in {name}: one key for all revocations "
            f"cannot expire token by token, so it keeps every revocation as long as the "
            f"longest. Give each revoked token its own key, named by its id (jti), with "
            f"its own TTL.",
            everything,
        )
    _judge_ttls("token B", written["B"], left["B"])
    if answers[1].get("accepted"):
        raise Fail(
            "Revoked token A was refused, but the same token with '==' appended was "
            "accepted. The padding changes the text, not the signature, so the token is "
            "still valid; your revocation is keyed by the token's text (or a hash of it). "
            "Key it by what the signature vouches for: the token's id, its jti claim.",
            _verdicts(rows),
            everything,
        )
    planted = {k: v for k, v in written["forged"].items() if k not in written["A"]}
    planted = {k: v for k, v in planted.items() if k not in written["B"]}
    if planted:
        raise Fail(
            f"revoke() was given a token signed with somebody else's key, naming another "
            f"session's jti and an expiry ten years away, and it wrote "
            f"{', '.join(sorted(planted))}. Anyone could log other users out, or fill Redis "
            f"with keys that live for years: revoke only a token that verify() accepts.",
            _keys_table(planted, "keys written for the forged token"),
            _verdicts(rows),
        )
    if not answers[3].get("accepted"):
        raise Fail(
            f"Token C (same user as A, another session, never revoked) was refused after A "
            f"and B were revoked: {answers[3].get('error')}. Revoke the one token, by its "
            f"jti; logging a user out everywhere is another feature (and a key per user "
            f"would also refuse the tokens of their next login).",
            _verdicts(rows),
            everything,
        )
    forged_step = story.get("revoke forged") or {}
    forged_note = "raised" if not forged_step.get("ok") else "returned, writing nothing"
    ttl_a = min(t for _, t in written["A"].values())
    ttl_b = min(t for _, t in written["B"].values())
    return Pass(
        f"Revoked tokens A and B were refused (also A re-spelled with '=='), C was not. "
        f"Their keys expire with the tokens: {ttl_a:.0f} s for A ({left['A']:.0f} s left), "
        f"{ttl_b:.0f} s for B ({left['B']:.0f} s left). revoke() of a forged token "
        f"{forged_note}.",
        everything,
        _verdicts(rows),
    )


# ------------------------------------------------------------------ authorisation

ROLES = ("viewer", "editor", "admin")
ACTIONS = ("read", "edit", "delete")


def _allowed(role: str | None, action: str, own: bool) -> bool:
    """The policy of the README's table: deny by default."""
    if role not in ROLES or action not in ACTIONS:
        return False
    if action == "read":
        return True
    if action == "edit":
        return role == "admin" or (role == "editor" and own)
    return role == "admin"


def _questions() -> list[tuple[str | None, str, bool, list[Any]]]:
    """(role, action, own, [claims, action, post]) for every case the check asks."""
    asked = []
    for role in (*ROLES, None, "", "superuser"):
        for action in (*ACTIONS, "publish"):
            if role == "admin" and action == "publish":
                continue  # whether admins may do unknown things is a matter of taste
            for own in (True, False):
                claims = {"sub": USER, "jti": uuid.uuid4().hex, "iss": ISSUER}
                if role is not None:
                    claims["role"] = role
                post = {"id": 40 + len(asked), "author": USER if own else OTHER_USER}
                post["title"] = "Spring launch" if own else "Pricing update"
                asked.append((role, action, own, [claims, action, post]))
    return asked


def _role_text(role: str | None) -> str:
    return "(no role claim)" if role is None else repr(role)


@check("authorization")
def authorization(ctx: CheckContext) -> Pass:
    """Roles and ownership: editors edit only their own posts; unknown means no."""
    ctx.read(FILE)
    asked = _questions()
    run = ctx.run(
        HARNESS_FILE,
        "decide_many",
        FILE,
        [q for *_, q in asked],
        files={HARNESS_FILE: HARNESS},
    )
    _require_ok(ctx, run, "can(claims, action, post)")
    answers = run.value
    if not isinstance(answers, list) or len(answers) != len(asked):
        raise Fail(f"can() could not be called for each question (got {answers!r:.200}).")
    for (_, action, _, question), answer in zip(asked, answers, strict=True):
        if "error" in answer:
            raise Fail(
                f"can({json.dumps(question[0])}, {action!r}, {json.dumps(question[2])}) "
                f"raised {answer['error']}. A missing or unknown role is an answer (no), "
                f"not an error."
            )
    wrong = [
        (role, action, own, bool(answer.get("answer")))
        for (role, action, own, _), answer in zip(asked, answers, strict=True)
        if bool(answer.get("answer")) != _allowed(role, action, own)
    ]
    table = Evidence(
        "decisions that differ from the policy",
        "table",
        (
            ("role", "action", "whose post", "can() said", "policy"),
            [
                (
                    _role_text(r),
                    a,
                    "their own" if o else "someone else's",
                    "yes" if got else "no",
                    "no" if got else "yes",
                )
                for r, a, o, got in wrong[:14]
            ],
        ),
    )
    if wrong:
        checked = len(asked)
        kinds = [
            (
                lambda w: w[0] == "editor" and w[1] == "edit" and not w[2] and w[3],
                "an editor may edit someone else's post: the role is checked but not the "
                "ownership. Editors edit only their own posts (the post's author is the "
                "token's sub).",
            ),
            (
                lambda w: w[0] not in ROLES and w[3],
                "a token with a missing or unknown role is let in. Deny by default: only "
                "the roles you know get anything.",
            ),
            (
                lambda w: w[1] not in ACTIONS and w[3],
                "an action the policy does not know ('publish') is allowed. Deny by "
                "default: an action nobody granted is refused.",
            ),
            (
                lambda w: w[1] == "delete" and w[3],
                "someone other than an admin may delete a post. Deleting is for admins only.",
            ),
            (
                lambda w: w[0] == "viewer" and w[3],
                "a viewer may change posts. Viewers read; that is all.",
            ),
            (
                lambda w: not w[3],
                "something the policy allows is refused: too strict is broken too (see the table).",
            ),
        ]
        reason = next((text for test, text in kinds if any(test(w) for w in wrong)), "")
        raise Fail(
            f"{len(wrong)} of {checked} decisions differ from the policy: {reason}",
            table,
        )
    return Pass(
        f"All {len(asked)} decisions (3 roles, a missing and two unknown roles, x read, edit, "
        f"delete and an unknown action, x own and others' posts) match the policy.",
    )


# ------------------------------------------------------------------ the cookie


def _parse_cookie(header: str) -> tuple[str, str, dict[str, str | None]]:
    """name, value and attributes (lower-case names) of one Set-Cookie header value."""
    text = header.strip()
    if text.lower().startswith("set-cookie:"):
        text = text.split(":", 1)[1].strip()
    first, *rest = text.split(";")
    name, _, value = first.partition("=")
    attributes: dict[str, str | None] = {}
    for part in rest:
        if not part.strip():
            continue
        key, eq, val = part.strip().partition("=")
        attributes[key.strip().lower()] = val.strip() if eq else None
    return name.strip(), value.strip().strip('"'), attributes


def _lifetime(attributes: dict[str, str | None]) -> float | None:
    """Seconds the browser keeps the cookie: Max-Age, else Expires; None: a session cookie."""
    max_age = attributes.get("max-age")
    if max_age is not None:
        try:
            return float(int(max_age))
        except ValueError:
            return None
    expires = attributes.get("expires")
    if expires:
        try:
            return email.utils.parsedate_to_datetime(expires).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return None


@check("cookie")
def cookie(ctx: CheckContext) -> Pass:
    """The session cookie: __Host-, HttpOnly, Secure, SameSite, and as long as the token."""
    now = int(time.time())
    claims = _claims(now, exp=now + 900)  # issued 5 minutes ago, 15 minutes left
    token = _mint(_attacker(), claims)  # the cookie does not care who signed it
    run = ctx.run(FILE, "session_cookie", token, claims)
    _require_ok(ctx, run, "session_cookie(token, claims)")
    header = run.value
    if not isinstance(header, str):
        raise Fail(
            f"session_cookie() returned {header!r:.120}, not a string: return the Set-Cookie "
            f"header's value, as text."
        )
    shown = Evidence("session_cookie() returned", "text", header.replace(token, "<token>"))
    name, value, attrs = _parse_cookie(header)
    left = claims["exp"] - time.time()
    problems: list[tuple[str, str]] = []  # (a few words, the whole story)
    if value != token:
        problems.append(
            ("wrong value", "its value is not the token it was given (put the token itself in it)")
        )
    if not name.startswith("__Host-"):
        problems.append(
            (
                "no __Host- prefix",
                f"its name {name!r} lacks the __Host- prefix, with which the browser accepts "
                f"the cookie only from this exact host over HTTPS, so no sibling subdomain "
                f"can set or overwrite it",
            )
        )
    if "httponly" not in attrs:
        problems.append(
            (
                "not HttpOnly",
                "it is not HttpOnly: any script on the page (one XSS bug, one compromised "
                "third-party script) can read the token and use it from anywhere",
            )
        )
    if "secure" not in attrs:
        problems.append(
            (
                "not Secure",
                "it is not Secure: the browser would send it over plain HTTP too, for anyone "
                "on the network to copy (Firesheep, 2010)",
            )
        )
    same_site = (attrs.get("samesite") or "").lower()
    if same_site not in ("lax", "strict"):
        seen = f"SameSite={attrs['samesite']}" if attrs.get("samesite") else "no SameSite"
        problems.append(
            (
                seen,
                f"it has {seen}: other sites' pages could make the browser send it with their "
                f"requests (CSRF). Use SameSite=Lax (or Strict)",
            )
        )
    if attrs.get("path") != "/":
        problems.append(
            (
                "Path is not /",
                "its Path is not / (a __Host- cookie must have Path=/, and the API needs it "
                "on every path)",
            )
        )
    if "domain" in attrs:
        problems.append(
            (
                "a Domain",
                f"it sets Domain={attrs['domain']}: that shares it with every subdomain, and "
                f"the browser rejects a __Host- cookie that names a Domain",
            )
        )
    life = _lifetime(attrs)
    if life is None:
        problems.append(
            (
                "no Max-Age",
                "it has no Max-Age (or Expires): a session cookie lives until the browser "
                "closes, and browsers that restore sessions keep it far longer than the token",
            )
        )
    elif life > left + MAX_LEEWAY:
        problems.append(
            (
                "outlives the token",
                f"it lives {life:.0f} s, but the token expires in {left:.0f} s: the browser "
                f"keeps sending a dead token (base Max-Age on the token's exp)",
            )
        )
    elif life < left - COOKIE_SLACK:
        problems.append(
            (
                "shorter than the token",
                f"it lives {life:.0f} s, but the token is good for {left:.0f} s: the user is "
                f"logged out early (base Max-Age on the token's exp)",
            )
        )
    if problems:
        rest = [label for label, _ in problems[1:]]
        more = f" Also: {', '.join(rest)}." if rest else ""
        raise Fail(f"The session cookie is not safe yet: {problems[0][1]}.{more}", shown)
    return Pass(
        f"{name}: HttpOnly, Secure, SameSite={attrs.get('samesite')}, Path=/, no Domain, and "
        f"it lives {life:.0f} s, as long as the token.",
        shown,
    )
