"""The auth lab (04): other correct answers pass, other wrong ones fail and say why.

Each variant is the reference solution with a few edits, judged by one check of the lab
on a workspace of its own, with its own key prefix on the machine's Redis (real servers,
as the lab's proof uses). Correct answers here use PyJWT in other ways than the
reference (decode_complete, a PyJWT instance, a timedelta leeway), other Redis commands
for the revocation (SETEX, SET then EXPIREAT, a pipeline, GET for the lookup), another
shape of policy, and other cookie builders (http.cookies, Expires instead of Max-Age).
Wrong ones are mistakes the lab's wrong/ does not hold: an issuer never checked, a
revocation TTL of the token's whole lifetime, revocations kept in the process's memory,
a cookie that lives a day, and code that hangs.
"""

from __future__ import annotations

import dataclasses
import secrets
import shutil
import tempfile
from pathlib import Path

import pytest

from sdtutor.content.loader import load_lab
from sdtutor.lab.checks import run_checks
from sdtutor.lab.results import CheckResult
from sdtutor.services.redis import client, delete_prefix
from tests.conftest import REPO, SYSTEM_REDIS

LAB = REPO / "labs" / "04-auth"
SOLUTION = (LAB / "solution" / "auth.py").read_text()

DECODE = """\
    claims = jwt.decode(
        token,
        public_key,
        algorithms=["RS256"],  # pinned: the token's header does not choose
        audience=AUDIENCE,
        issuer=ISSUER,
        leeway=LEEWAY,
        options={"require": ["exp", "iat", "jti", "sub"]},
    )
"""
SET_KEY = """\
    ttl = int(claims["exp"] + LEEWAY - time.time()) + 1
    cache.set(_revoked_key(claims["jti"]), "1", ex=max(ttl, 1))
"""
LOOKUP = 'if cache.exists(_revoked_key(claims["jti"])):'
COOKIE_LINE = (
    '    return f"{COOKIE}={token}; Max-Age={max_age}; Path=/; Secure; HttpOnly; SameSite=Lax"\n'
)
CAN = SOLUTION[SOLUTION.index("def can(") : SOLUTION.index('COOKIE = "__Host-session"')]


def variant(*edits: tuple[str, str]) -> str:
    """The reference solution with each (old, new) edit made; every `old` must be there."""
    text = SOLUTION
    for old, new in edits:
        assert text.count(old) == 1, f"the solution no longer has {old!r}"
        text = text.replace(old, new)
    return text


def judge(check_id: str, code: str, time_limit: int | None = None) -> CheckResult:
    """Run one check of the lab on a workspace holding `code` as auth.py."""
    spec = load_lab(LAB)
    lab = dataclasses.replace(
        spec,
        checks=tuple(c for c in spec.checks if c.id == check_id),
        time_limit=time_limit or spec.time_limit,
    )
    prefix = f"sdtutor-test-auth:{secrets.token_hex(4)}:"
    with tempfile.TemporaryDirectory(prefix="sdtutor-lab04-") as tmp:
        workspace = Path(tmp)
        shutil.copyfile(LAB / "README.md", workspace / "README.md")
        (workspace / "auth.py").write_text(code)
        try:
            [result] = run_checks(
                lab,
                workspace,
                {"redis": SYSTEM_REDIS},
                prefixes={"redis": prefix},
                deadline=(time_limit or spec.time_limit) + 20,  # the check's own time too
            )
        finally:
            admin = client(SYSTEM_REDIS)
            delete_prefix(admin, prefix)
            admin.close()
    return result


# ------------------------------------------------------------------ correct ways

CORRECT: dict[str, tuple[list[str], str]] = {
    # decode_complete, leeway as a timedelta, aud given as a list of acceptable audiences.
    "decode-complete": (
        ["signature", "claims"],
        variant(
            (
                DECODE,
                """\
    import datetime

    claims = jwt.decode_complete(
        token,
        key=public_key,
        algorithms=["RS256"],
        audience=[AUDIENCE],
        issuer=ISSUER,
        leeway=datetime.timedelta(seconds=10),
        options={"require": ["exp"], "verify_signature": True},
    )["payload"]
""",
            )
        ),
    ),
    # A PyJWT instance with its options, and the public key loaded by cryptography first.
    "pyjwt-instance-key-object": (
        ["signature", "claims"],
        variant(
            (
                DECODE,
                """\
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    decoder = jwt.PyJWT(options={"require": ["exp", "iss", "aud"], "verify_nbf": True})
    claims = decoder.decode(
        token,
        load_pem_public_key(public_key.encode()),
        algorithms=["RS256"],
        audience=AUDIENCE,
        issuer=ISSUER,
    )
""",
            )
        ),
    ),
    "setex-no-leeway-get-lookup": (
        ["revocation"],
        variant(
            ("LEEWAY = 30 ", "LEEWAY = 0 "),
            (LOOKUP, 'if cache.get(_revoked_key(claims["jti"])) is not None:'),
            (
                SET_KEY,
                """\
    import math

    cache.setex(_revoked_key(claims["jti"]), math.ceil(claims["exp"] - time.time()), "r")
""",
            ),
        ),
    ),
    "set-then-expireat-in-a-pipeline": (
        ["revocation"],
        variant(
            (
                SET_KEY,
                """\
    key = _revoked_key(claims["jti"])
    with cache.pipeline() as pipe:
        pipe.set(key, claims["sub"])
        pipe.expireat(key, claims["exp"] + LEEWAY)
        pipe.execute()
""",
            ),
        ),
    ),
    # revoke decodes for itself, and quietly ignores a token it cannot verify.
    "revoke-ignores-bad-tokens": (
        ["revocation"],
        variant(
            (
                "    claims = verify(cache, token, public_key)\n    # The token",
                """\
    try:
        claims = jwt.decode(
            token, public_key, algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER
        )
    except jwt.InvalidTokenError:
        return False
    # The token""",
            ),
        ),
    ),
    "policy-table": (
        ["authorization"],
        variant(
            (
                CAN,
                '''\
POLICY = {
    ("viewer", "read"): "any",
    ("editor", "read"): "any",
    ("editor", "edit"): "own",
    ("admin", "read"): "any",
    ("admin", "edit"): "any",
    ("admin", "delete"): "any",
}


def can(claims, action, post):
    """Look the (role, action) pair up; what is not in the table is refused."""
    rule = POLICY.get((claims.get("role"), action))
    if rule == "own":
        return post.get("author") == claims.get("sub")
    return rule == "any"


''',
            ),
        ),
    ),
    "simplecookie-strict": (
        ["cookie"],
        variant(
            (
                COOKIE_LINE,
                """\
    from http.cookies import SimpleCookie

    jar = SimpleCookie()
    jar[COOKIE] = token
    morsel = jar[COOKIE]
    morsel["httponly"] = True
    morsel["secure"] = True
    morsel["samesite"] = "Strict"
    morsel["path"] = "/"
    morsel["max-age"] = max_age
    return morsel.OutputString()
""",
            ),
        ),
    ),
    "expires-date-lowercase-attributes": (
        ["cookie"],
        variant(
            (
                COOKIE_LINE,
                """\
    from email.utils import formatdate

    expires = formatdate(claims["exp"], usegmt=True)
    return f"{COOKIE}={token}; samesite=lax; httponly; secure; path=/; expires={expires}"
""",
            ),
        ),
    ),
}


@pytest.mark.parametrize("name", list(CORRECT))
def test_other_correct_answers_pass(name: str) -> None:
    checks, code = CORRECT[name]
    for check_id in checks:
        result = judge(check_id, code)
        assert result.passed, f"{check_id}: {result.message}"


# ------------------------------------------------------------------ wrong ways

WRONG: dict[str, tuple[str, str, list[str]]] = {
    "no-issuer-check": (
        "claims",
        variant(("        issuer=ISSUER,\n", "")),
        ["Require the issuer"],
    ),
    "ttl-of-the-whole-lifetime": (
        "revocation",
        variant(
            (
                SET_KEY,
                '    lifetime = claims["exp"] - claims["iat"]\n'
                '    cache.set(_revoked_key(claims["jti"]), "1", ex=lifetime)\n',
            )
        ),
        ["outlives the token", "whole lifetime"],
    ),
    # Revocations in a set in the module: the harness's one process sees them, no other
    # app server would.
    "revocations-in-memory": (
        "revocation",
        variant(
            (LOOKUP, 'if claims["jti"] in REVOKED:'),
            (SET_KEY, '    REVOKED.add(claims["jti"])\n'),
            ("ROLES = {", "REVOKED = set()\nROLES = {"),
        ),
        ["wrote no key", "every app server"],
    ),
    # Milliseconds for seconds: the key is gone within a second, or before the lookup.
    "px-for-seconds": (
        "revocation",
        variant((SET_KEY, '    cache.set(_revoked_key(claims["jti"]), "1", px=600)\n')),
        [],
    ),
    # Refusal by returning None: callers that forget to test it carry on.
    "returns-none-when-refusing": (
        "signature",
        variant(
            (
                DECODE,
                "    try:\n"
                + DECODE.replace("\n    ", "\n        ").replace("    claims", "        claims", 1)
                + "    except jwt.InvalidTokenError:\n        return None\n",
            ),
        ),
        ["instead of raising"],
    ),
    "cookie-lives-a-day": (
        "cookie",
        variant((COOKIE_LINE, COOKIE_LINE.replace("Max-Age={max_age}", "Max-Age=86400"))),
        ["dead token"],
    ),
    "cookie-without-path": (
        "cookie",
        variant((COOKIE_LINE, COOKIE_LINE.replace(" Path=/;", ""))),
        ["Path is not /"],
    ),
    "editor-deletes-own": (
        "authorization",
        variant(
            (
                '        return role == "admin"\n    return False',
                '        own = post["author"] == claims["sub"]\n'
                '        return role == "admin" or (role == "editor" and own)\n    return False',
            )
        ),
        ["Deleting is for admins only"],
    ),
}


@pytest.mark.parametrize("name", list(WRONG))
def test_other_wrong_answers_fail_and_say_why(name: str) -> None:
    check_id, code, says = WRONG[name]
    result = judge(check_id, code)
    assert not result.passed
    for phrase in says:
        assert phrase in result.message, result.message


def test_a_verify_that_hangs_is_stopped_and_named() -> None:
    code = variant((DECODE, "    while True:\n        pass\n"))
    result = judge("signature", code, time_limit=2)
    assert not result.passed
    assert "did not return within its time limit" in result.message
