"""Checks for the rate-limiting lab: play calls at chosen moments, read what Redis holds.

Never the clock. The learner's functions take the current time as an argument (`now`),
so a check can put calls on both sides of a window's edge, or a minute apart, without
waiting: the app passes time.time(). The moments are near the real time, so TTLs set
from them mean what they would in production, and chosen in quarter seconds, so every
sum the limiter makes is exact in floating point.

"Holds at the edge" is defined, and judged, as: no span of `window` seconds (a call at t
counts the calls allowed in (t - window, t]) contains more than `limit` allowed calls.
Any algorithm that keeps that and never refuses a caller who stays under it passes: a
sliding log, or anything that answers the same. The answers come from the learner's
process, which is where an app would act on them; each batch of calls runs in a fresh
process, as calls land on different app servers, so only what the code keeps in Redis
carries over. What Redis holds (keys, types, sizes, TTLs) and the commands the proxy saw
explain a failure and catch a limiter that never asks Redis.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdtutor.lab.checks import CheckContext, Evidence, Fail, Pass, check

FILE = "limiter.py"
HARNESS = Path(__file__).with_name("harness.py")
HARNESS_FILE = "sdtutor_rate_limit_harness.py"  # its name in the sandbox, beside limiter.py
HEADER_NAMES = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
HANDSHAKE = {"HELLO", "CLIENT", "AUTH", "SELECT", "PING", "QUIT", "RESET"}
"""Commands a client sends to set up its connection: not a question about a limit."""

LIMIT, WINDOW = 5, 10
"""The limit most checks use: 5 calls in any 10 s."""
EDGE_WINDOW = 60
"""The edge check's window: its calls run in two processes one after the other, and a key
that expires a window after its last call (in real time) must outlive the gap between
them on a busy machine."""
SERVERS, THREADS = 10, 5
CROWD = SERVERS * THREADS
"""50 callers at once: 10 processes (app servers) of 5 threads each, each thread on a
connection of its own, all released together."""
CROWD_LIMIT, CROWD_WINDOW = 20, 60
CROWD_LATENCY = 0.1
"""Seconds the proxy adds to each trip to Redis while the 50 callers run: it widens the
gap between a read and a write, so a read-then-write race shows on any machine. Never
measured, only imposed."""
TTL_WINDOW = 30
TTL_SLACK = 10
"""Seconds a key's TTL may have run down between the call and the check reading it."""
TTL_MAX_WINDOWS = 4
CAPACITY, RATE = 10, 0.25
"""The token bucket the check plays with: 10 tokens, one more every 4 s (a full refill
takes 40 s, so a bucket whose key expires then outlives the gap between two processes)."""
CROWD_CAPACITY = 20


# ------------------------------------------------------------------ helpers


@dataclass
class Decision:
    """One answer of allow(): the decision and its headers, as the learner returned them."""

    now: float
    allowed: bool
    headers: dict[str, Any]

    def header(self, name: str) -> Any:
        """A header by name, whatever its case (None when missing)."""
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


def _scores(ctx: CheckContext, key: str) -> list[float]:
    """A sorted set's scores as seconds (a log of int(now * 1000) is read as such)."""
    scores = [float(score) for _, score in ctx.redis().zrange(key, 0, -1, withscores=True)]
    return [x / 1000 if x > 1e11 else x for x in scores]


def _stale_entries(
    ctx: CheckContext, before: float, played: list[float]
) -> tuple[str, int, int, bool] | None:
    """A sorted set holding entries scored at or before `before`: (key, how many, of all,
    whether every score is one of the moments the checker `played`)."""
    for key, kind, _ in _keys(ctx):
        if kind != "zset":
            continue
        scores = _scores(ctx, key)
        old = sum(1 for x in scores if x <= before)
        if old:
            ours = all(any(abs(x - t) < 0.002 for t in played) for x in scores)
            return key, old, len(scores), ours
    return None


def _boundary(window: float) -> float:
    """A window's edge a little in the future: a multiple of `window` since 1970, as a
    fixed window keyed on int(now // window) would have it."""
    return (math.floor(time.time() / window) + 1) * window


def _fresh(name: str) -> str:
    """A client key no earlier run has used."""
    return f"{name}-{secrets.token_hex(3)}"


def _keys(ctx: CheckContext) -> list[tuple[str, str, int]]:
    """Every key under the lab's prefix: (key, type, TTL); -1 is no expiry."""
    return sorted((str(k), str(t), int(ttl)) for k, t, ttl in ctx.keys("*") if int(ttl) != -2)


def _short(ctx: CheckContext, key: str) -> str:
    """A key's name as the learner wrote it after the prefix: '<prefix>log:alice'."""
    prefix = ctx.prefix("redis")
    return "<prefix>" + key[len(prefix) :] if prefix and key.startswith(prefix) else key


def _clear(ctx: CheckContext) -> None:
    keys = [key for key, _, _ in _keys(ctx)]
    if keys:
        ctx.redis().delete(*keys)


def _size(ctx: CheckContext, key: str, kind: str) -> int | None:
    """How many entries a key holds (None for a plain string)."""
    r = ctx.redis()
    sizes = {"zset": r.zcard, "list": r.llen, "hash": r.hlen, "set": r.scard, "stream": r.xlen}
    return int(sizes[kind](key)) if kind in sizes else None


def _keys_evidence(ctx: CheckContext, title: str) -> Evidence:
    rows = []
    for key, kind, ttl in _keys(ctx)[:20]:
        size = _size(ctx, key, kind)
        rows.append(
            (
                _short(ctx, key),
                kind if size is None else f"{kind} ({size} entries)",
                "never expires" if ttl == -1 else f"{ttl} s",
            )
        )
    return Evidence(title, "table", (("key", "type", "TTL"), rows or [("(none)", "", "")]))


def _require_ok(ctx: CheckContext, run: Any, what: str) -> None:
    """Fail with a teaching message when the learner's code raised or never returned."""
    if run.timed_out:
        raise Fail(
            f"{what} did not return within its time limit. Look for a loop that never ends: "
            f"a WATCH that retries forever, or a wait for something that never comes.",
            Evidence("its output", "text", run.output or "(none)"),
        )
    if run.ok:
        return
    error = str(run.error or "")
    if "noperm" in error.lower() or "no permissions" in error.lower():
        prefix = ctx.prefix("redis")
        raise Fail(
            f"Redis refused {what}: {error}. The lab's Redis user may only touch keys that "
            f"start with os.environ['REDIS_KEY_PREFIX'] (here '{prefix}'), as an app sharing "
            f"a Redis with other teams would. Build every key from it, and pass every key a "
            f"script touches in KEYS, not in ARGV.",
            Evidence("traceback", "text", run.traceback or error),
        )
    raise Fail(
        f"{what} raised an error: {error.strip().splitlines()[-1] if error.strip() else '?'}",
        Evidence("traceback", "text", run.traceback or run.output or error),
    )


def _run(ctx: CheckContext, function: str, *calls: list[list[Any]], **options: Any) -> Any:
    return ctx.run(
        HARNESS_FILE,
        function,
        *calls,
        clients=("redis",),
        files={HARNESS_FILE: HARNESS},
        **options,
    )


def _decision(value: Any, now: float) -> Decision:
    """Read one answer of allow(); fail when it is not (allowed, headers)."""
    if (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], bool)
        and isinstance(value[1], dict)
    ):
        return Decision(now, value[0], value[1])
    raise Fail(
        f"allow() returned {str(value)[:120]!r}. Return a pair (allowed, headers): a bool, "
        f"and a dict with X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset, "
        f"plus Retry-After when the call is refused, as the starter does."
    )


def _allow(ctx: CheckContext, key: str, limit: int, window: float, times: list[float]) -> list:
    """allow() for each moment in `times`, in one fresh process; the decisions."""
    calls = [[key, limit, window, t] for t in times]
    run = _run(ctx, "allow_many", calls)
    _require_ok(ctx, run, f"allow(r, {key!r}, {limit}, {window}, now)")
    return [_decision(v, t) for v, t in zip(run.value, times, strict=True)]


def _take(ctx: CheckContext, key: str, capacity: int, rate: float, times: list[float]) -> list:
    """take_token() for each moment in `times`, in one fresh process; the answers."""
    run = _run(ctx, "take_many", [[key, capacity, rate, t] for t in times])
    _require_ok(ctx, run, f"take_token(r, {key!r}, {capacity}, {rate}, now)")
    answers = list(run.value)
    for value in answers:
        if not isinstance(value, bool):
            raise Fail(
                f"take_token() returned {str(value)[:80]!r}: return True when the call may "
                f"go (a token was taken) and False when the bucket is empty."
            )
    return answers


def _crowd(ctx: CheckContext, function: str, args: list[Any]) -> tuple[list[Any], int, Any]:
    """`function`(r, *args) by CROWD callers at once, through a slow proxy.

    Returns every answer, the commands that asked Redis something, and the workers' run.
    """
    slow = ctx.proxy("redis")
    slow.latency = CROWD_LATENCY
    crowd = ctx.workers(
        HARNESS_FILE,
        "crowd",
        SERVERS,
        clients=("redis",),
        args_for=lambda i: [function, [args] * THREADS],
        proxies={"redis": slow},
        files={HARNESS_FILE: HARNESS},
    )
    what = f"{function}(r, {', '.join(repr(a) for a in args)})"
    for run in crowd.runs:
        _require_ok(ctx, run, what + f" on {THREADS} threads at once")
    answers = [answer for run in crowd.runs for answer in run.value]
    return answers, _work(crowd.server["redis"].commands), crowd


def _densest(times: Iterable[float], window: float) -> tuple[int, float]:
    """The most allowed calls in one span (t - window, t], and the t that ends it."""
    ordered = sorted(times)
    best, end = 0, 0.0
    for t in ordered:
        inside = sum(1 for s in ordered if t - window < s <= t)
        if inside > best:
            best, end = inside, t
    return best, end


def _at(t: float, origin: float) -> str:
    return f"t={t - origin:+.2f} s"


def _calls_evidence(decisions: list[Decision], origin: float, title: str) -> Evidence:
    rows = []
    for d in decisions:
        headers = ", ".join(f"{k.removeprefix('X-RateLimit-')}={v}" for k, v in d.headers.items())
        rows.append((_at(d.now, origin), "allowed" if d.allowed else "refused", headers[:90]))
    return Evidence(title, "table", (("moment", "answer", "headers"), rows))


def _groups(times: list[float], origin: float) -> str:
    """'1 at t=+1.00 s, 4 at t=+9.50 s': calls grouped by moment."""
    counts: dict[float, int] = {}
    for t in sorted(times):
        counts[t] = counts.get(t, 0) + 1
    return ", ".join(f"{n} at {_at(t, origin)}" for t, n in counts.items())


def _sliding_log(times: list[float], limit: int, window: float) -> tuple[list[bool], list[float]]:
    """What the task asks: each call's decision, and the times of the allowed calls."""
    allowed: list[float] = []
    decisions = []
    for t in times:
        ok = sum(1 for s in allowed if t - window < s <= t) < limit
        decisions.append(ok)
        if ok:
            allowed.append(t)
    return decisions, allowed


def _work(commands: Iterable[list[str]]) -> int:
    """Commands that asked Redis something (connection set-up does not count)."""
    return sum(1 for c in commands if c and c[0].upper() not in HANDSHAKE)


def _nothing_in_redis(ctx: CheckContext, seen: str) -> None:
    """Fail, after `seen` (what went wrong), when the limiter keeps nothing in Redis."""
    if not _keys(ctx):
        raise Fail(
            f"{seen} Nothing is stored under your prefix in Redis. Each batch of calls runs "
            f"in a new process, as requests land on different app servers: a count kept in "
            f"a dict or a module variable starts again in each, so every server would give "
            f"the client a full budget. Keep the count in Redis."
        )


# ------------------------------------------------------------------ the checks


@check("edge")
def edge(ctx: CheckContext) -> Pass:
    """No span of `window` seconds holds more than `limit` allowed calls."""
    _clear(ctx)
    w = EDGE_WINDOW
    a = _boundary(w)  # a window's edge falls at t=+60 s
    key = _fresh("edge")
    first = [a + 6.0] + [a + w - 3] * 5
    second = [a + w + 3] * 5 + [a + w + 9] * 5
    decisions = _allow(ctx, key, LIMIT, w, first)  # one app server ...
    decisions += _allow(ctx, key, LIMIT, w, second)  # ... then another
    allowed = [d.now for d in decisions if d.allowed]
    most, end = _densest(allowed, w)
    evidence = _calls_evidence(decisions, a, f"the calls (limit {LIMIT} in {w} s)")
    if most <= LIMIT:
        return Pass(
            f"{len(first) + len(second)} calls around a window's edge: at most {most} "
            f"allowed in any {w} s (limit {LIMIT}).",
            evidence,
        )
    inside = [t for t in allowed if end - w < t <= end]
    seen = (
        f"allow() let {most} calls of one client through within {w} s, with a limit of "
        f"{LIMIT}: {_groups(inside, a)} (a {w} s window's edge falls at t=+{w:.2f} s)."
    )
    _nothing_in_redis(ctx, seen)
    keys = _keys(ctx)
    logs = [(k, _size(ctx, k, t) or 0) for k, t, _ in keys if t == "zset"]
    if logs and max(n for _, n in logs) < most:
        advice = (
            f" Your sorted set holds only {max(n for _, n in logs)} entries although {most} "
            f"calls were allowed: calls made at the same moment overwrote each other's entry "
            f"(a member is unique within a set). Give each call a member of its own."
        )
    elif most <= LIMIT + 2 and not logs:
        advice = (
            " That is a little over the limit, as an estimate gets: a sliding-window "
            "counter charges a share of the previous window's count, as if its calls had "
            "been spread evenly, and here they came at its very end; a token bucket refills "
            "while the calls of the last window still count. Count the calls themselves."
        )
    else:
        advice = (
            " A count per window (a fixed window) starts again from zero when a new window "
            "begins, although the calls made just before are still less than a window old: "
            "it lets up to twice the limit through around each edge."
        )
    raise Fail(
        seen + advice + f" The task: no span of {w} s may hold more than {LIMIT} allowed "
        f"calls. Count the calls of the last {w} s before `now`, whatever the moment.",
        evidence,
        _keys_evidence(ctx, "keys under your prefix afterwards"),
    )


@check("steady")
def steady(ctx: CheckContext) -> Pass:
    """A client who stays under the limit is never refused, whatever its rhythm."""
    _clear(ctx)
    a = _boundary(WINDOW)
    key = _fresh("steady")
    spacing = WINDOW / (LIMIT - 1)  # 4 calls per 10 s: 80% of the limit
    even = [a + 0.25 + spacing * i for i in range(24)]
    # A client that spends its whole budget at once, then waits a little over a window.
    bursts = [a + 70.5 + (WINDOW + 0.25) * g for g in range(4) for _ in range(LIMIT)]
    times = even + bursts
    decisions = _allow(ctx, key, LIMIT, WINDOW, times)
    expected, _ = _sliding_log(times, LIMIT, WINDOW)
    refused = [n for n, d in enumerate(decisions) if expected[n] and not d.allowed]
    if refused:
        n = refused[0]
        rhythm = f"one call every {spacing:g} s" if n < len(even) else f"{LIMIT} at once"
        before = [d.now for d in decisions[:n] if d.allowed and times[n] - WINDOW < d.now]
        seen = (
            f"A client calling {rhythm} (limit {LIMIT} in {WINDOW} s) was refused at "
            f"{_at(times[n], a)}, although it had made only {len(before)} allowed call(s) in "
            f"the {WINDOW} s before."
        )
        _nothing_in_redis(ctx, seen)
        stale = _stale_entries(ctx, times[n] - WINDOW, times)
        if stale and not stale[3]:
            advice = (
                f" The times in {_short(ctx, stale[0])} are not the moments the checker "
                f"passed as `now`: a log scored with the clock (time.time(), Redis's TIME) "
                f"sees the checker's calls, made a second apart in real time, as a burst. "
                f"Use `now`."
            )
        elif stale:
            key_name, old, entries, _ = stale
            advice = (
                f" {_short(ctx, key_name)} still holds {old} of its {entries} entries from "
                f"calls older than the window before that moment, and they are still "
                f"counted. Remove what has left the window before you count."
            )
        elif rhythm.endswith("at once"):
            advice = (
                f" Its previous {LIMIT} calls were {WINDOW + 0.25:g} s earlier, out of the "
                f"window. A sliding-window counter refuses here: it still charges a share of "
                f"the previous window's count, as if those calls had been spread over it."
            )
        else:
            advice = (
                " The count never drops back: if a key's EXPIRE is set again on every "
                "call, a busy client's window never ends; and a window must be measured with "
                "`now`, not with the clock or Redis's TTL, which do not move between the "
                "checker's calls."
            )
        raise Fail(
            seen + advice,
            _calls_evidence(decisions[max(0, n - 8) : n + 1], a, "the calls before the refusal"),
            _keys_evidence(ctx, "keys under your prefix"),
        )
    sizes = [(k, _size(ctx, k, t) or 0) for k, t, _ in _keys(ctx)]
    grown = [(k, s) for k, s in sizes if s > 2 * LIMIT]
    if grown:
        name = _short(ctx, grown[0][0])
        raise Fail(
            f"No call was refused, but after {len(even) + len(bursts)} calls {name} "
            f"holds {grown[0][1]} entries for a limit of {LIMIT}: calls older than the window "
            f"are never removed, so a busy client's key grows for as long as it keeps "
            f"calling. Trim what has left the window on each call.",
            _keys_evidence(ctx, "keys under your prefix"),
        )
    return Pass(
        f"{len(even) + len(bursts)} calls under the limit (one every {spacing:g} s, then "
        f"{LIMIT} at once every {WINDOW + 0.25:g} s): none refused.",
    )


@check("concurrent")
def concurrent(ctx: CheckContext) -> Pass:
    """50 callers released together, on 50 processes, get exactly the limit."""
    _clear(ctx)
    key = _fresh("crowd")
    now = math.floor(time.time()) + 0.5
    answers, sent, crowd = _crowd(ctx, "allow", [key, CROWD_LIMIT, CROWD_WINDOW, now])
    decisions = [_decision(answer, now) for answer in answers]
    allowed = sum(d.allowed for d in decisions)
    if sent < CROWD:
        raise Fail(
            f"{CROWD} callers sent Redis only {sent} commands between them: some decided "
            f"without asking it. Every app server must ask the shared store: a decision made "
            f"from memory in one process knows nothing of the others."
        )
    if allowed == CROWD_LIMIT:
        return Pass(
            f"{CROWD} callers at the same moment ({SERVERS} processes of {THREADS} threads): "
            f"exactly "
            f"{CROWD_LIMIT} allowed (limit {CROWD_LIMIT}).",
        )
    commands = crowd.server["redis"].commands
    logs = [(k, _size(ctx, k, t) or 0) for k, t, _ in _keys(ctx) if t == "zset"]
    evidence = [
        Evidence(
            "what Redis saw",
            "text",
            f"{sent} commands from {CROWD} callers; the first few:\n"
            + "\n".join(
                " ".join(_short(ctx, word) for word in c)[:76]
                for c in [c for c in commands if c[0].upper() not in HANDSHAKE][:12]
            ),
        ),
        _keys_evidence(ctx, "keys under your prefix afterwards"),
    ]
    if allowed > CROWD_LIMIT and logs and max(n for _, n in logs) < allowed:
        raise Fail(
            f"{CROWD} callers at the same moment: {allowed} allowed, with a limit of "
            f"{CROWD_LIMIT}. Your sorted set holds only {max(n for _, n in logs)} entries: "
            f"calls at the same `now` overwrote each other's member. Give each call a member "
            f"of its own.",
            *evidence,
        )
    if allowed > CROWD_LIMIT:
        raise Fail(
            f"{CROWD} callers at the same moment ({SERVERS} app servers of {THREADS} threads, "
            f"released together): "
            f"{allowed} allowed, with a limit of {CROWD_LIMIT}. Each read the count before "
            f"the others had written theirs, and each saw room: a read-then-write race. The "
            f"read and the write must be one step that no other caller can split: one atomic "
            f"command, a Lua script, or MULTI/EXEC (with WATCH if you read first).",
            *evidence,
        )
    raise Fail(
        f"{CROWD} callers at the same moment: only {allowed} allowed, with a limit of "
        f"{CROWD_LIMIT}. Callers that add themselves first and count in a separate round trip "
        f"see each other's entries, and refuse themselves for calls that were never allowed. "
        f"Count, decide and record in one step that no other caller can split (a Lua script, "
        f"or MULTI/EXEC).",
        *evidence,
    )


def _whole(value: Any) -> int | None:
    """A header value as a whole number, or None when it is not one."""
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return int(number) if number.is_integer() else None


def _header_problem(d: Decision, ok: bool, remaining: int, wait: float) -> str:
    """What is wrong with one answer, judged against the sliding log ('' when nothing)."""
    missing = [name for name in HEADER_NAMES if d.header(name) is None]
    if missing:
        return f"its headers lack {', '.join(missing)}"
    if d.allowed != ok:
        return (
            f"it was {'allowed' if d.allowed else 'refused'}, but {LIMIT - remaining - ok} "
            f"call(s) were allowed in the {WINDOW} s before it, so it should be "
            f"{'allowed' if ok else 'refused'}"
        )
    if _whole(d.header("X-RateLimit-Limit")) != LIMIT:
        return f"X-RateLimit-Limit is {d.header('X-RateLimit-Limit')!r}, not the limit {LIMIT}"
    left = _whole(d.header("X-RateLimit-Remaining"))
    if left is None or left < 0:
        return (
            f"X-RateLimit-Remaining is {d.header('X-RateLimit-Remaining')!r}: it must be a "
            f"whole number, never below 0"
        )
    if left != remaining:
        return (
            f"X-RateLimit-Remaining is {left}, but {remaining} more call(s) would be allowed "
            f"at that moment (limit {LIMIT} minus the calls of the last {WINDOW} s, this one "
            f"included)"
        )
    try:
        reset = float(str(d.header("X-RateLimit-Reset")).strip())
    except ValueError:
        return f"X-RateLimit-Reset is {d.header('X-RateLimit-Reset')!r}, not a number"
    if reset <= WINDOW + 1:
        return (
            f"X-RateLimit-Reset is {reset:g}: it is a moment in epoch seconds (as GitHub sends "
            f"it), not a number of seconds from now"
        )
    if not d.now - 1 <= reset <= d.now + WINDOW + 1:
        return (
            f"X-RateLimit-Reset is {reset:g}, {reset - d.now:+.1f} s from now: the budget is "
            f"back within one window ({WINDOW} s), never in the past"
        )
    retry = d.header("Retry-After")
    if d.allowed:
        if retry is not None and _whole(retry) != 0:
            return f"it was allowed, yet it carries Retry-After: {retry}, which only a refusal has"
        return ""
    seconds = _whole(retry)
    if retry is None:
        return "it was refused without a Retry-After header"
    if seconds is None:
        return (
            f"Retry-After is {retry!r}: HTTP wants whole seconds (round the wait up, so a "
            f"client that obeys it is never early)"
        )
    if seconds < wait:
        return (
            f"Retry-After is {seconds}, but the next call is allowed only {wait:g} s later: a "
            f"client that obeys it comes back too early (round the wait up)"
        )
    if seconds > wait + 1:
        return (
            f"Retry-After is {seconds}, but a call is allowed again {wait:g} s later: say when "
            f"the oldest call still counted leaves the window, rounded up"
        )
    return ""


@check("headers")
def headers(ctx: CheckContext) -> Pass:
    """Each answer carries its budget; a refusal says when to come back, and is right."""
    _clear(ctx)
    b = _boundary(WINDOW) + 0.25
    key = _fresh("headers")
    everything: list[Decision] = []
    history: list[float] = []  # every moment played so far, for the sliding log

    def play(times: list[float]) -> list[Decision]:
        decisions = _allow(ctx, key, LIMIT, WINDOW, times)
        for d in decisions:
            everything.append(d)
            history.append(d.now)
            wanted, allowed = _sliding_log(history, LIMIT, WINDOW)
            ok = wanted[-1]
            remaining = max(0, LIMIT - sum(1 for s in allowed if d.now - WINDOW < s <= d.now))
            counted = sorted(s for s in allowed if d.now - WINDOW < s <= d.now)
            wait = counted[-LIMIT] + WINDOW - d.now if not ok and len(counted) >= LIMIT else 0.0
            problem = _header_problem(d, ok, remaining, wait)
            if problem:
                number = len(everything)
                raise Fail(
                    f"Call {number} (limit {LIMIT} in {WINDOW} s, at {_at(d.now, b)}): {problem}.",
                    _calls_evidence(everything, b, "the calls so far"),
                )
        return decisions

    # Five allowed, one refused (Retry-After 7: the first call leaves the window at
    # t=+10.00 s); then, when that says, two allowed and one refused again.
    played = play([b, b, b + 3, b + 3, b + 3, b + 3.5, b + 10.5, b + 10.5, b + 10.5])
    first, second = played[5].header("Retry-After"), played[-1].header("Retry-After")
    return Pass(
        f"{len(played)} calls: Remaining counted down to 0, the refusals said Retry-After "
        f"{first} and {second}, and the call made {first} s after the first refusal was "
        f"allowed.",
        _calls_evidence(everything, b, "the calls"),
    )


@check("keys-expire")
def keys_expire(ctx: CheckContext) -> Pass:
    """Every key the limiter writes expires, about a window after its last use."""
    _clear(ctx)
    now = time.time()
    capacity, rate = 15, 15 / TTL_WINDOW  # a full refill takes one TTL_WINDOW
    quiet, busy = _fresh("quiet"), _fresh("busy")  # a client under its limit, one over
    calls = [[quiet, LIMIT, TTL_WINDOW, now]] * 2 + [[busy, LIMIT, TTL_WINDOW, now]] * (LIMIT + 2)
    run = _run(ctx, "both", calls, [[_fresh("bucket"), capacity, rate, now]] * 3)
    _require_ok(ctx, run, "allow() and take_token() for three clients")
    keys = _keys(ctx)
    evidence = _keys_evidence(ctx, "keys under your prefix")
    _nothing_in_redis(ctx, "allow() and take_token() were called for three clients.")
    forever = [k for k, _, ttl in keys if ttl == -1]
    if forever:
        raise Fail(
            f"{_short(ctx, forever[0])} never expires. A client that stops calling leaves it "
            f"behind for good (memory grows with every client ever seen), and a counter that "
            f"is never reset can lock a client out for good. Give every key an expiry, in the same "
            f"step that writes it: a crash between two round trips must not leave a key "
            f"without one.",
            evidence,
        )
    low, high = TTL_WINDOW - TTL_SLACK, TTL_MAX_WINDOWS * TTL_WINDOW
    short = [(k, ttl) for k, _, ttl in keys if ttl < low]
    if short:
        name = _short(ctx, short[0][0])
        raise Fail(
            f"{name} expires in {short[0][1]} s, but the window is {TTL_WINDOW} s (and "
            f"a bucket of {capacity} tokens at {rate:g} per second takes {TTL_WINDOW} s to "
            f"refill): the key vanishes while its calls still count, and the client gets a "
            f"fresh budget early. Let it live at least as long as what it remembers matters.",
            evidence,
        )
    long = [(k, ttl) for k, _, ttl in keys if ttl > high]
    if long:
        name = _short(ctx, long[0][0])
        raise Fail(
            f"{name} lives {long[0][1]} s, for a window of {TTL_WINDOW} s: an idle "
            f"client's key stays {long[0][1] // TTL_WINDOW} windows after it stops mattering. "
            f"Expire it about one window (or one full refill) after its last use, at most "
            f"{TTL_MAX_WINDOWS}.",
            evidence,
        )
    return Pass(
        f"{len(keys)} keys after calls on three clients, each expiring in "
        f"{min(t for _, _, t in keys)} to {max(t for _, _, t in keys)} s (window {TTL_WINDOW} s).",
        evidence,
    )


def _bucket(times: list[float], capacity: int, rate: float) -> list[tuple[bool, float]]:
    """What a token bucket answers at each moment, with the tokens it held before."""
    tokens, at, out = float(capacity), times[0], []
    for t in times:
        if t > at:
            tokens, at = min(capacity, tokens + (t - at) * rate), t
        ok = tokens >= 1
        out.append((ok, tokens))
        if ok:
            tokens -= 1
    return out


@check("token-bucket")
def token_bucket(ctx: CheckContext) -> Pass:
    """A burst up to the capacity, then the refill rate, exactly; atomic under a crowd."""
    _clear(ctx)
    t0 = _boundary(WINDOW) + 0.25
    key = _fresh("bucket")
    tick = 1 / RATE  # seconds per token
    steady = [t0 + 6 * tick + 1.25 * tick * i for i in range(1, 9)]  # 80% of the rate
    phases = [
        ([t0] * 15, f"a burst of 15 on a new bucket: {CAPACITY} may go, the rest wait"),
        (
            [t0 + tick / 2, t0 + tick],
            f"{tick / 2:g} s later the bucket has half a token, {tick:g} s later one "
            f"({RATE:g} per second)",
        ),
        (
            [t0 + 6 * tick] * 6 + steady,
            f"{5 * tick:g} s later it has 5 tokens; then a steady caller, one call every "
            f"{1.25 * tick:g} s (under the rate), must always find one",
        ),
        ([t0 + 200 * tick] * 15, f"after a long rest the bucket holds {CAPACITY}, never more"),
    ]
    played: list[float] = []
    answers: list[bool] = []
    phase_of: list[int] = []
    for group in ((0, 1), (2, 3)):
        # Two app servers (two processes) one after the other: only Redis carries the bucket.
        times = [t for number in group for t in phases[number][0]]
        answers += _take(ctx, key, CAPACITY, RATE, times)
        phase_of += [number for number in group for _ in phases[number][0]]
        played += times
        model = _bucket(played, CAPACITY, RATE)
        for n in range(len(played) - len(times), len(played)):
            ok, tokens = model[n]
            number, story = phase_of[n], phases[phase_of[n]][1]
            if answers[n] == ok:
                continue
            first = played.index(played[n])
            seen = (
                f"take_token(capacity {CAPACITY}, rate {RATE:g}/s) at {_at(played[n], t0)}, "
                f"call {n - first + 1} at that moment: {'allowed' if answers[n] else 'refused'}"
                f", but the bucket held {tokens:g} token(s) then. The story: {story}."
            )
            if all(answers) and not _keys(ctx):
                raise Fail(
                    f"take_token() let all {len(answers)} calls through, a burst of 15 on a "
                    f"bucket of {CAPACITY} included, and stored nothing in Redis: it limits "
                    f"nothing yet. Build the bucket in Redis: its tokens and the time they "
                    f"were counted, in one hash per client."
                )
            _nothing_in_redis(ctx, seen)
            if answers[n] and number == 3:
                advice = " The bucket must never hold more than its capacity: cap the refill."
            elif not answers[n] and number in (1, 2):
                advice = (
                    " Refill continuously: add (now - last update) * rate, keep the fraction, "
                    "and move the last update to now. A bucket that refills whole windows at a "
                    "time, or drops the fraction it had, starves a client who calls more often "
                    "than one token's worth of time."
                )
            else:
                advice = (
                    " A new bucket starts full; each call takes one token if at least one is there."
                )
            rows = [
                (_at(t, t0), "allowed" if a else "refused", f"{m[1]:g}", "yes" if m[0] else "no")
                for t, a, m in list(zip(played, answers, model, strict=True))[max(0, n - 6) : n + 1]
            ]
            raise Fail(
                seen + advice,
                Evidence(
                    "the calls", "table", (("moment", "answer", "tokens before", "may go"), rows)
                ),
                _keys_evidence(ctx, "keys under your prefix"),
            )

    # The crowd: 50 callers at one moment on a new bucket of 20.
    crowd_key = _fresh("bucket-crowd")
    now = math.floor(time.time()) + 0.5
    answers, sent, _ = _crowd(ctx, "take_token", [crowd_key, CROWD_CAPACITY, 1.0, now])
    if sent < CROWD:
        raise Fail(
            f"{CROWD} callers of take_token() sent Redis only {sent} commands between them: "
            f"some decided without asking it, from a bucket in their own process's memory."
        )
    taken = sum(1 for answer in answers if answer is True)
    if taken != CROWD_CAPACITY:
        raise Fail(
            f"The bucket's answers were right one call at a time, but {CROWD} callers at the "
            f"same moment on a new bucket of {CROWD_CAPACITY} got {taken} tokens. Reading the "
            f"tokens, computing, then writing them back in separate round trips lets callers "
            f"read the same count: do the read, the refill and the take in one Lua script.",
            _keys_evidence(ctx, "keys under your prefix afterwards"),
        )
    return Pass(
        f"A burst of {CAPACITY}, then one token every {1 / RATE:g} s with the fractions kept, "
        f"never above {CAPACITY} after a rest; {CROWD} callers at once took exactly "
        f"{CROWD_CAPACITY}.",
    )
