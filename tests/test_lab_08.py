"""The rate-limiting lab (08): other answers than the reference, judged by its checks.

- The lab's Redis user (limited to the lab's prefix, -@dangerous) can run everything the
  fix needs: EVAL, EVALSHA, Redis 7 functions, MULTI/EXEC with WATCH.
- Other correct answers pass the checks they touch: WATCH with MULTI instead of Lua,
  add-then-count inside MULTI, a Redis 7 function, scores in milliseconds, hash-tagged
  keys through EVALSHA, GCRA for the token bucket.
- Other wrong answers fail with a message that teaches: colliding members, a log counted
  by range but never trimmed, a dict in the process, the clock instead of `now`, GCRA
  where a sliding window is asked for, a bucket without a cap or that drops fractions,
  Retry-After rounded down, Reset as a delta, keys outside the prefix, code that hangs,
  code that lies.

Each variant runs the checks it is about (the whole set takes ~15 s), as the lab's ACL
user on the machine's Redis, under a prefix of this module's own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdtutor.content.loader import load_lab
from sdtutor.content.models import LabSpec
from sdtutor.lab.checks import run_checks
from sdtutor.lab.results import CheckResult
from sdtutor.services.base import Access, Target, kind
from sdtutor.services.names import Names
from sdtutor.services.redis import client
from tests.conftest import REPO, SYSTEM_REDIS

LAB = REPO / "labs" / "08-rate-limiting"
SOLUTION = (LAB / "solution" / "limiter.py").read_text()


def variant(*edits: tuple[str, str]) -> str:
    """The reference solution with each (old, new) edit made; every `old` must be there."""
    text = SOLUTION
    for old, new in edits:
        assert old in text, f"the solution no longer has {old!r}"
        text = text.replace(old, new)
    return text


def with_allow(code: str) -> str:
    """The solution with its allow() replaced (take_token stays)."""
    start, end = SOLUTION.index("def allow("), SOLUTION.index("def take_token(")
    return SOLUTION[:start] + code.strip() + "\n\n\n" + SOLUTION[end:]


def with_take(code: str) -> str:
    """The solution with its take_token() replaced."""
    return SOLUTION[: SOLUTION.index("def take_token(")] + code.strip() + "\n"


HEADERS = """
def _headers(limit, count, window, newest, freeing, now, allowed):
    headers = {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(max(0, limit - count)),
        "X-RateLimit-Reset": str(math.ceil(newest + window)),
    }
    if not allowed:
        headers["Retry-After"] = str(max(1, math.ceil(freeing + window - now)))
    return allowed, headers
"""

WATCH_MULTI = (
    HEADERS
    + '''
def allow(r, key, limit, window, now):
    """WATCH the log, read the calls in the window, then write in MULTI; retry on a clash."""
    import redis

    log = f"{PREFIX}log:{key}"
    member = uuid.uuid4().hex
    with r.pipeline() as p:
        while True:
            try:
                p.watch(log)
                inside = p.zrangebyscore(log, f"({now - window}", "+inf", withscores=True)
                scores = sorted(s for _, s in inside)
                if len(scores) >= limit:
                    p.unwatch()
                    freeing = scores[len(scores) - limit]
                    return _headers(limit, len(scores), window, scores[-1], freeing, now, False)
                p.multi()
                p.zremrangebyscore(log, "-inf", now - window)
                p.zadd(log, {member: now})
                p.expire(log, math.ceil(window))
                p.execute()
                newest = max(scores + [now])
                return _headers(limit, len(scores) + 1, window, newest, now, now, True)
            except redis.WatchError:
                continue
'''
)

ADD_THEN_COUNT_IN_MULTI = (
    HEADERS
    + '''
def allow(r, key, limit, window, now):
    """Trim, add and count in one MULTI; a call over the limit takes its entry back."""
    log = f"{PREFIX}log:{key}"
    member = uuid.uuid4().hex
    with r.pipeline(transaction=True) as tx:
        tx.zremrangebyscore(log, "-inf", now - window)
        tx.zadd(log, {member: now})
        tx.zcard(log)
        tx.expire(log, math.ceil(window))
        _, _, count, _ = tx.execute()
    allowed = count <= limit
    if not allowed:
        r.zrem(log, member)
        count -= 1
    scores = [s for _, s in r.zrange(log, 0, -1, withscores=True)]
    freeing = scores[max(0, len(scores) - limit)] if scores else now
    return _headers(limit, count, window, max(scores or [now]), freeing, now, allowed)
'''
)

FUNCTION = '''
LIBRARY = """#!lua name=sdtutor_test_ratelimit
redis.register_function('sdtutor_test_allow', function(keys, args)
  local key, limit, window, now = keys[1], tonumber(args[1]), tonumber(args[2]), tonumber(args[3])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  local allowed = 0
  if count < limit then
    redis.call('ZADD', key, now, args[4])
    count = count + 1
    allowed = 1
  end
  redis.call('EXPIRE', key, math.ceil(window))
  local freeing = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
  local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  return {allowed, count, freeing[2] or '', newest[2] or ''}
end)
"""


def allow(r, key, limit, window, now):
    """The sliding log as a Redis 7 function, loaded (or replaced) on first use."""
    global LOADED
    if not globals().get("LOADED"):
        r.function_load(LIBRARY, replace=True)
        LOADED = True
    allowed, count, freeing, newest = r.fcall(
        "sdtutor_test_allow", 1, f"{PREFIX}fn:{key}", limit, window, repr(now), uuid.uuid4().hex
    )
    newest = float(newest) if newest else now
    headers = {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(max(0, limit - int(count))),
        "X-RateLimit-Reset": str(math.ceil(newest + window)),
    }
    if not allowed:
        headers["Retry-After"] = str(max(1, math.ceil(float(freeing) + window - now)))
    return bool(allowed), headers
'''

MILLISECONDS = variant(
    (
        "allowed, count, freeing, newest = r.eval(\n"
        '        SLIDING_LOG, 1, f"{PREFIX}log:{key}", limit, window, repr(now), '
        "uuid.uuid4().hex\n    )\n",
        "allowed, count, freeing, newest = r.eval(\n"
        '        SLIDING_LOG, 1, f"{PREFIX}ms:{key}", limit, int(window * 1000),\n'
        "        int(now * 1000), uuid.uuid4().hex\n    )\n"
        "    freeing = int(freeing) / 1000 if freeing else ''\n"
        "    newest = int(newest) / 1000 if newest else ''\n",
    ),
    ("redis.call('EXPIRE', key, math.ceil(window))", "redis.call('PEXPIRE', key, window)"),
)

EVALSHA_HASH_TAGS = variant(
    (
        "    allowed, count, freeing, newest = r.eval(\n"
        '        SLIDING_LOG, 1, f"{PREFIX}log:{key}", limit, window, repr(now), '
        "uuid.uuid4().hex\n    )\n",
        "    script = r.register_script(SLIDING_LOG)  # EVALSHA, EVAL once on NOSCRIPT\n"
        "    allowed, count, freeing, newest = script(\n"
        '        keys=[f"{PREFIX}rl:{{{key}}}:log"], args=[limit, window, repr(now), '
        "uuid.uuid4().hex]\n    )\n",
    ),
)

GCRA = '''
GCRA = """
local key, capacity, rate, now = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local interval = 1 / rate
local tat = math.max(tonumber(redis.call('GET', key)) or now, now)
if tat + interval - now <= capacity * interval then
  redis.call('SET', key, tat + interval, 'EX', math.ceil(capacity * interval) + 1)
  return 1
end
return 0
"""


def take_token(r, key, capacity, rate, now):
    """GCRA: one stored time (the theoretical arrival time) instead of tokens."""
    return r.eval(GCRA, 1, f"{PREFIX}gcra:{key}", capacity, rate, repr(now)) == 1
'''

CORRECT: dict[str, tuple[str, list[str]]] = {
    "watch-then-multi": (with_allow(WATCH_MULTI), ["concurrent", "headers", "steady"]),
    "add-then-count-in-multi": (with_allow(ADD_THEN_COUNT_IN_MULTI), ["concurrent", "headers"]),
    "redis-function": (with_allow(FUNCTION), ["edge", "concurrent", "keys-expire"]),
    "millisecond-scores": (MILLISECONDS, ["edge", "steady", "headers", "keys-expire"]),
    "evalsha-hash-tagged-keys": (EVALSHA_HASH_TAGS, ["edge", "headers", "keys-expire"]),
    "gcra-bucket": (with_take(GCRA), ["token-bucket", "keys-expire"]),
}

# ------------------------------------------------------------------ wrong ways

IN_PROCESS = '''
CALLS = {}


def allow(r, key, limit, window, now):
    """A log in this process's memory: right on one server, blind to the others."""
    log = [t for t in CALLS.get(key, []) if t > now - window]
    allowed = len(log) < limit
    if allowed:
        log.append(now)
    CALLS[key] = log
    headers = {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(max(0, limit - len(log))),
        "X-RateLimit-Reset": str(math.ceil(max(log or [now]) + window)),
    }
    if not allowed:
        headers["Retry-After"] = str(math.ceil(log[-limit] + window - now))
    return allowed, headers
'''

LIES = '''
def allow(r, key, limit, window, now):
    """Says yes to everyone with headers that look right."""
    return True, {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(limit - 1),
        "X-RateLimit-Reset": str(math.ceil(now + window)),
    }
'''

HANGS = '''
def allow(r, key, limit, window, now):
    """Waits for a lock nobody ever frees."""
    while not r.set(f"{PREFIX}lock:{key}", 1, nx=True, ex=60):
        pass
    while True:
        pass
'''

GCRA_AS_WINDOW = '''
def allow(r, key, limit, window, now):
    """A token bucket of `limit` tokens refilled at limit/window per second."""
    allowed = take_token(r, key, limit, limit / window, now)
    headers = {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(math.ceil(now + window)),
    }
    if not allowed:
        headers["Retry-After"] = str(math.ceil(window / limit))
    return allowed, headers
'''

WRONG: dict[str, tuple[str, str, list[str]]] = {
    "member-is-now": (
        variant(("redis.call('ZADD', key, now, ARGV[4])", "redis.call('ZADD', key, now, now)")),
        "edge",
        ["overwrote each other's entry", "member of its own"],
    ),
    "counted-by-range-never-trimmed": (
        variant(
            ("redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)\n", ""),
            (
                "local count = redis.call('ZCARD', key)",
                "local count = redis.call('ZCOUNT', key, '(' .. (now - window), now)",
            ),
            (
                "redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')",
                "redis.call('ZRANGEBYSCORE', key, '(' .. (now - window), now, 'WITHSCORES',"
                " 'LIMIT', count - limit, 1)",
            ),
        ),
        "steady",
        ["never removed", "grows for as long as it keeps calling"],
    ),
    "in-process-dict": (with_allow(IN_PROCESS), "edge", ["nothing is stored", "new process"]),
    "reads-the-clock": (
        variant(
            ("limit, window, repr(now), uuid", "limit, window, repr(time.time()), uuid")
        ).replace("import math\n", "import math\nimport time\n"),
        "steady",
        ["was refused at", "not the moments the checker passed as `now`"],
    ),
    "gcra-for-the-window": (
        with_allow(GCRA_AS_WINDOW),
        "edge",
        ["6 calls of one client", "a token bucket refills"],
    ),
    "says-yes-to-all": (with_allow(LIES), "edge", ["15 calls of one client", "nothing is stored"]),
    "log-expires-too-soon": (
        variant(("redis.call('EXPIRE', key, math.ceil(window))", "redis.call('EXPIRE', key, 5)")),
        "keys-expire",
        ["expires in", "fresh budget early"],
    ),
    "log-kept-for-a-day": (
        variant(
            ("redis.call('EXPIRE', key, math.ceil(window))", "redis.call('EXPIRE', key, 86400)")
        ),
        "keys-expire",
        ["lives 86400 s", "at most 4"],
    ),
    "key-without-prefix": (
        variant(('f"{PREFIX}log:{key}"', 'f"log:{key}"')),
        "edge",
        ["redis refused", "REDIS_KEY_PREFIX"],
    ),
    "returns-only-the-decision": (
        variant(("    return bool(allowed), headers\n", "    return bool(allowed)\n")),
        "headers",
        ["return a pair (allowed, headers)"],
    ),
    "hangs": (with_allow(HANGS), "edge", ["did not return within its time limit"]),
    "retry-after-rounds-down": (
        variant(
            (
                "str(max(1, math.ceil(float(freeing) + window - now)))",
                "str(int(float(freeing) + window - now))",
            )
        ),
        "headers",
        ["retry-after is 6", "too early"],
    ),
    "reset-as-seconds-from-now": (
        variant(("str(math.ceil(newest + window))", "str(math.ceil(newest + window - now))")),
        "headers",
        ["not a number of seconds from now"],
    ),
    "retry-after-on-every-answer": (
        variant(
            ('    if not allowed:\n        headers["Retry-After"]', '    headers["Retry-After"]'),
            (
                "str(max(1, math.ceil(float(freeing) + window - now)))",
                "str(max(1, math.ceil(float(freeing or now) + window - now)))",
            ),
        ),
        "headers",
        ["only a refusal has"],
    ),
    "bucket-without-cap": (
        variant(
            (
                "tokens = math.min(capacity, tokens + (now - at) * rate)",
                "tokens = tokens + (now - at) * rate",
            )
        ),
        "token-bucket",
        ["never hold more than its capacity"],
    ),
    "bucket-drops-fractions": (
        variant(
            (
                "tokens = math.min(capacity, tokens + (now - at) * rate)",
                "tokens = math.min(capacity, tokens + math.floor((now - at) * rate))",
            )
        ),
        "token-bucket",
        ["keep the fraction", "refused"],
    ),
}


# ------------------------------------------------------------------ machinery


@pytest.fixture(scope="module")
def access() -> Iterator[Access]:
    """The lab's ACL user and prefix on the machine's Redis, for this module only."""
    lab = load_lab(LAB)
    target = Target(SYSTEM_REDIS, Names(secrets.token_hex(4), "rate-limiting-test"), "redis", lab)
    redis_kind = kind("redis")
    granted = redis_kind.provision(target, fresh=True)
    try:
        yield granted
    finally:
        redis_kind.teardown(target, purge=True)
        admin = client(SYSTEM_REDIS)
        with contextlib.suppress(Exception):  # loaded only when the function variant ran
            admin.function_delete("sdtutor_test_ratelimit")
        admin.close()


def judge(
    access: Access, code: str, checks: list[str], time_limit: float = 20
) -> list[CheckResult]:
    """Run the named checks on a workspace whose limiter.py is `code`; each call of the
    learner's code may take `time_limit` s, the checks together at least 30 s."""
    spec: LabSpec = load_lab(LAB)
    spec = dataclasses.replace(
        spec, checks=tuple(c for c in spec.checks if c.id in checks), time_limit=time_limit
    )
    with tempfile.TemporaryDirectory(prefix="sdtutor-lab08-") as tmp:
        workspace = Path(tmp)
        (workspace / "limiter.py").write_text(code)
        return run_checks(
            spec,
            workspace,
            {"redis": access.url},
            prefixes={"redis": access.prefix},
            deadline=max(30.0, time_limit * len(spec.checks)),
        )


def test_the_lab_user_may_run_scripts_functions_and_transactions(access: Access) -> None:
    import redis

    r = redis.Redis.from_url(access.url, decode_responses=True)
    key = access.prefix + "probe"
    try:
        assert "@" in access.url.split("//", 1)[1]  # a user of its own, not the admin login
        assert r.eval("return redis.call('INCR', KEYS[1])", 1, key) == 1
        assert r.register_script("return redis.call('INCR', KEYS[1])")(keys=[key]) == 2
        with r.pipeline() as p:
            p.watch(key)
            p.multi()
            p.incr(key)
            assert p.execute() == [3]
        r.function_load(
            "#!lua name=sdtutor_test_probe\nredis.register_function('sdtutor_test_probe', "
            "function(keys, args) return redis.call('INCR', keys[1]) end)",
            replace=True,
        )
        assert r.fcall("sdtutor_test_probe", 1, key) == 4
        # Functions are the server's: deleting them is for the admin, not a lab's user.
        with pytest.raises(redis.exceptions.NoPermissionError):
            r.function_delete("sdtutor_test_probe")
        with pytest.raises(redis.ResponseError, match="permissions"):
            r.eval("return redis.call('INCR', KEYS[1])", 1, "elsewhere:probe")
    finally:
        r.delete(key)
        r.close()
        admin = client(SYSTEM_REDIS)
        with contextlib.suppress(Exception):
            admin.function_delete("sdtutor_test_probe")
        admin.close()


@pytest.mark.parametrize("name", list(CORRECT))
def test_other_correct_answers_pass(name: str, access: Access) -> None:
    code, checks = CORRECT[name]
    results: list[CheckResult] = judge(access, code, checks)
    assert [r.id for r in results] == [c.id for c in load_lab(LAB).checks if c.id in checks]
    for result in results:
        assert result.passed, f"{result.id}: {result.message}"


@pytest.mark.parametrize("name", list(WRONG))
def test_other_wrong_answers_fail_and_say_why(name: str, access: Access) -> None:
    code, check_id, says = WRONG[name]
    [result] = judge(access, code, [check_id], time_limit=4 if name == "hangs" else 20)
    assert not result.passed and result.status != "error", result.message
    for phrase in says:
        assert phrase.lower() in result.message.lower(), result.message
