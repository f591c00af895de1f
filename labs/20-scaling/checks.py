"""Checks for the scaling lab: a service that survives many clients and a failing Redis.

The breaker is judged by a harness that drives it with a fake clock and counts the calls
that reach a fake dependency. Everything else drives the learner's own service over HTTP,
started through the runner behind proxies that count what PostgreSQL and Redis really
see: connections opened, commands sent, connection attempts turned away.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time
from pathlib import Path
from typing import Any

from sdtutor.lab.checks import CheckContext, Evidence, Fail, Pass, check

HARNESS = Path(__file__).with_name("harness.py")
HARNESS_FILE = "sdtutor_scaling_harness.py"  # its name in the sandbox, beside the files
FILES = {HARNESS_FILE: HARNESS}
APP = ["app.py"]
READY = ("http", "/health")

THRESHOLD = 3  # the failures the harness's breaker is built with
COOLDOWN = 10.0  # its reset_timeout, in fake seconds
CALLERS = 5  # callers that arrive while a call is being refused or tried

CLIENTS = 200  # requests sent at once to /home
POOL_BUDGET = 10  # connections one process may hold to PostgreSQL
TURN_AWAY = 20  # more open at once and the proxy refuses, so a shared server never fills up
OUTAGE_REQUESTS = 20  # requests sent one by one while Redis is gone
OUTAGE_ATTEMPTS = 6  # new Redis connections allowed for all of them (a breaker needs 3 or 4)
RECOVERY_WAIT = 5.0  # seconds to wait for the service to know the login again


# ------------------------------------------------------------------ HTTP, as a browser would


class Reply:
    """One HTTP answer (status 0: no answer at all, `error` says why)."""

    def __init__(self, status: int, body: Any = None, cookie: str = "", error: str = "") -> None:
        self.status = status
        self.body = body
        self.cookie = cookie
        self.error = error

    def text(self) -> str:
        """How the answer reads in a message."""
        if self.status == 0:
            return f"no answer ({self.error})"
        if isinstance(self.body, dict) and "items" in self.body:  # a home page
            return (
                f"HTTP {self.status} with user {json.dumps(self.body.get('user'))} and "
                f"{len(self.body['items'] or [])} items"
            )
        return f"HTTP {self.status} {json.dumps(self.body)[:120]}"


def _request(
    url: str, method: str, path: str, body: Any = None, cookie: str = "", timeout: float = 5.0
) -> Reply:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    headers = {"Connection": "close"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if cookie:
        headers["Cookie"] = f"session={cookie}"
    try:
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        set_cookie = response.getheader("Set-Cookie") or ""
    except (OSError, http.client.HTTPException) as exc:
        return Reply(0, error=f"{type(exc).__name__}: {exc}".rstrip(": "))
    finally:
        conn.close()
    try:
        parsed: Any = json.loads(raw)
    except ValueError:
        parsed = raw.decode(errors="replace")[:200]
    token = ""
    if set_cookie.startswith("session="):
        token = set_cookie.split(";", 1)[0].removeprefix("session=")
    elif isinstance(parsed, dict) and isinstance(parsed.get("token"), str):
        token = parsed["token"]
    return Reply(response.status, parsed, token)


def _home_ok(reply: Reply) -> bool:
    """A home page: 200 with the catalogue in it."""
    return (
        reply.status == 200
        and isinstance(reply.body, dict)
        and isinstance(reply.body.get("items"), list)
        and len(reply.body["items"]) > 0
    )


def _login(url: str, user: str = "ada") -> str:
    reply = _request(url, "POST", "/login", {"user": user})
    if reply.status != 200 or not reply.cookie:
        raise Fail(
            f'POST /login {{"user": "{user}"}} gave {reply.text()}; it should answer 200 with '
            "a session cookie (and the token in the body). Try it by hand with curl."
        )
    return reply.cookie


def _logs(service: Any) -> Evidence:
    return Evidence("your service's output", "text", service.logs()[-3000:] or "(none)")


# ------------------------------------------------------------------ task 1: the breaker


def _refused(outcome: str) -> bool:
    """The caller got an exception (a breaker may re-raise the last failure instead of its
    own CircuitOpenError: what counts is that the dependency was not called)."""
    return outcome.startswith("refused") or outcome == "dependency-error"


def _summary(outcomes: list[str]) -> str:
    """Outcomes in order of first appearance, counted: 'ok, refused: X x5'."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome] = counts.get(outcome, 0) + 1
    return ", ".join(o if n == 1 else f"{o} x{n}" for o, n in counts.items())


EXPECT: dict[str, tuple[int, str, str]] = {
    # step: (calls that must reach the dependency, what every caller gets, what it means)
    "closed-fail-below": (
        THRESHOLD - 1,
        "dependency-error",
        f"{THRESHOLD - 1} failures (below the threshold of {THRESHOLD}) must reach the "
        "dependency and raise its own error",
    ),
    "closed-success": (1, "ok", "a call while closed must reach the dependency"),
    "closed-fail-below-again": (
        THRESHOLD - 1,
        "dependency-error",
        f"after a success, {THRESHOLD - 1} more failures must still find the circuit closed: "
        "count failures in a row, and start again from 0 after a success",
    ),
    "closed-success-again": (1, "ok", "a call while closed must reach the dependency"),
    "opening-failures": (
        THRESHOLD,
        "dependency-error",
        f"{THRESHOLD} failures in a row must each reach the dependency (the last one opens "
        "the circuit)",
    ),
    "open-refuses": (
        0,
        "refused",
        f"after {THRESHOLD} failures in a row the circuit is open: calls must fail at once "
        "(raise) without calling the dependency",
    ),
    "open-before-cooldown": (
        0,
        "refused",
        f"{COOLDOWN * 0.9:g} s after opening (the cool-down is {COOLDOWN:g} s) it must still "
        "refuse without calling the dependency",
    ),
    "closed-after-trial": (
        3,
        "ok",
        "a successful trial must close the circuit, so the next calls go through",
    ),
    "opening-failures-2": (
        THRESHOLD,
        "dependency-error",
        f"after closing again, {THRESHOLD} failures in a row must reach the dependency",
    ),
    "failed-trial": (
        1,
        "dependency-error",
        "after the cool-down, one trial call must reach the dependency (here it fails)",
    ),
    "reopened-refuses": (
        0,
        "refused",
        "a failed trial must open the circuit again: the next calls must not reach the "
        "dependency for another cool-down",
    ),
    "second-trial": (1, "ok", "after another cool-down, a trial must reach the dependency"),
    "closed-at-last": (2, "ok", "a successful trial must close the circuit"),
}


def _judge_half_open(step: dict[str, Any]) -> str:
    """What went wrong in the half-open step ('' if nothing)."""
    if not step["trial_reached"]:
        return (
            f"{COOLDOWN:g} s after opening, the next call was refused: the breaker never "
            "half-opens, so a dependency that recovers is never tried again. After the "
            "cool-down, let one trial call through."
        )
    if step["others_calls"]:
        return (
            f"half-open let {step['others_calls']} of {CALLERS} other callers reach the "
            "dependency while the trial was still running: exactly one trial may go through; "
            "everyone else must still be refused until it ends."
        )
    if step["others_waiting"]:
        return (
            f"{step['others_waiting']} of {CALLERS} callers waited for the trial to finish "
            "instead of being refused at once: do not hold a lock while the dependency runs."
        )
    if not all(_refused(o) for o in step["outcomes"]):
        return (
            f"while the trial ran, other callers got {_summary(step['outcomes'])} instead of "
            "an error: refuse them."
        )
    if step["trial"] != "ok":
        return f"the trial call should return the dependency's answer, but got {step['trial']}."
    return ""


@check("breaker")
def breaker(ctx: CheckContext) -> Pass:
    run = ctx.run(HARNESS_FILE, "scenario", "breaker.py", THRESHOLD, COOLDOWN, CALLERS, files=FILES)
    if run.timed_out or run.limit:
        raise Fail(
            f"Driving your CircuitBreaker did not finish ({run.limit or 'it ran out of time'}). "
            "Does call() wait on something, or hold a lock while the dependency runs?",
            Evidence("its output", "text", run.output or "(none)"),
        )
    if not run.ok:
        raise Fail(
            f"CircuitBreaker(failure_threshold={THRESHOLD}, reset_timeout={COOLDOWN:g}, "
            f"clock=...) could not be driven: {run.error}",
            Evidence("traceback", "text", run.traceback or run.output or "(none)"),
        )
    steps: list[dict[str, Any]] = run.value
    table = Evidence(
        "what the harness saw, step by step",
        "table",
        (
            ("step", "calls that reached it", "what callers got"),
            [(s["step"], str(s["calls"]), _summary(s["outcomes"])) for s in steps],
        ),
    )
    for step in steps:
        if step["step"] == "half-open-trial":
            problem = _judge_half_open(step)
            if problem:
                raise Fail(problem, table)
            continue
        calls, outcome, meaning = EXPECT[step["step"]]
        got = step["outcomes"]
        right = all(_refused(o) if outcome == "refused" else o == outcome for o in got)
        if step["calls"] != calls or not right:
            raise Fail(
                f"{meaning[0].upper()}{meaning[1:]}. Seen at step {step['step']}: "
                f"{step['calls']} call(s) reached the dependency; callers got {_summary(got)}.",
                table,
            )
    return Pass(
        f"Opens after {THRESHOLD} failures in a row, refuses without calling while open, "
        f"lets one trial through after the cool-down (the other {CALLERS} callers refused), "
        "closes on success and reopens on failure.",
        table,
    )


# ------------------------------------------------------------------ task 2: the pool


def _burst(url: str, n: int) -> list[Reply]:
    """n GET /home requests released together from n threads."""
    gate = threading.Barrier(n)
    replies: list[Reply] = [Reply(0, error="not sent")] * n

    def one(i: int) -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            gate.wait(10)
        replies[i] = _request(url, "GET", "/home", timeout=15)

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return replies


@check("pool-bounded")
def pool_bounded(ctx: CheckContext) -> Pass:
    pg = ctx.proxy("postgres")
    pg.max_open = TURN_AWAY  # a service without a bound must not fill a shared server
    peak = [0]
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.003):
            peak[0] = max(peak[0], pg.open_connections)

    try:
        pg.latency = 0.01  # every query holds its connection a little, as real ones do
        service = ctx.service(APP, ready=READY, proxies={"postgres": pg})
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        replies = _burst(service.url, CLIENTS)
        done.set()
        watcher.join(1)
        opened, refused = pg.stats.connections, pg.stats.refused
        service.stop()
    finally:
        done.set()
        pg.close()
    good = sum(1 for r in replies if _home_ok(r))
    failed = [r for r in replies if not _home_ok(r)]
    seen = (
        f"{CLIENTS} requests to /home at once: {good} answered with the catalogue. "
        f"PostgreSQL saw {opened} connections opened, at most {peak[0]} open at once"
        + (f"; {refused} more were turned away (over {TURN_AWAY} at once)" if refused else "")
        + "."
    )
    evidence = Evidence(
        "what the server saw",
        "table",
        (
            ("", "count"),
            [
                ("requests answered 200 with items", str(good)),
                ("connections PostgreSQL accepted", str(opened)),
                ("most open at once", str(peak[0])),
                ("connections turned away", str(refused)),
                *[("a failed request", r.text()) for r in failed[:1]],
            ],
        ),
    )
    if opened + refused > 2 * POOL_BUDGET and not refused:
        raise Fail(
            f"{seen} Each request opened a connection of its own: every one costs a "
            "handshake and a new PostgreSQL backend process. Keep connections open and hand "
            "them from request to request (a pool), opening a new one only while fewer than "
            f"POOL_SIZE = {POOL_BUDGET} exist.",
            evidence,
        )
    if opened + refused > 2 * POOL_BUDGET or peak[0] > POOL_BUDGET:
        raise Fail(
            f"{seen} The budget is {POOL_BUDGET} per process: a connection per request (or a "
            "pool that grows without a limit, or one per thread) runs a real database out of "
            f"connection slots. Keep at most POOL_SIZE = {POOL_BUDGET} connections in db.py "
            "and make requests wait for a free one.",
            evidence,
        )
    if failed:
        raise Fail(
            f"{seen} The connections stayed within budget, but {len(failed)} requests failed "
            f"(one: {failed[0].text()}). A request that finds the pool busy should wait for a "
            "connection, not fail.",
            evidence,
        )
    return Pass(seen, evidence)


# ------------------------------------------------------------------ task 3: shared sessions


@check("sessions-shared")
def sessions_shared(ctx: CheckContext) -> Pass:
    before = {k.key for k in ctx.keys("*")}
    first = ctx.service(APP, ready=READY)
    second = ctx.service(APP, ready=READY)
    cookie = _login(first.url)
    on_first = _request(first.url, "GET", "/home", cookie=cookie)
    on_second = _request(second.url, "GET", "/home", cookie=cookie)
    user = lambda r: r.body.get("user") if isinstance(r.body, dict) else None  # noqa: E731
    if user(on_first) != "ada":
        raise Fail(
            "Logged in as ada on process A, then GET /home on A with the session cookie gave "
            f'{on_first.text()}: it should say user "ada".',
            _logs(first),
        )
    if user(on_second) != "ada":
        raise Fail(
            "Logged in as ada on process A; process A knows her, but process B answered "
            f"{on_second.text()}. Behind a load balancer the next request may land on any "
            "process: keep sessions where every process can read them (Redis, at "
            "REDIS_URL, keys under REDIS_KEY_PREFIX).",
        )
    keys = ctx.keys("*")
    new = [k for k in keys if k.key not in before]
    first.stop()
    second.stop()
    if not new:
        raise Fail(
            "Both processes know the login, but no new key appeared under the lab's Redis "
            "prefix. Keep the session in Redis under REDIS_KEY_PREFIX.",
            keys.evidence(),
        )
    forever = [k for k in new if not k.expires]
    if forever:
        raise Fail(
            f"The session key {forever[0].key} never expires: every login ever made stays "
            "in Redis (and stays valid) forever. Give it a TTL (SESSION_SECONDS).",
            keys.evidence(first=new),
        )
    long = [k for k in new if k.ttl > 86400]
    if long:
        raise Fail(
            f"The session key {long[0].key} lives {long[0].ttl} s: more than a day. Keep "
            "sessions short (30 minutes is usual) and renew them while they are used.",
            keys.evidence(first=new),
        )
    return Pass(
        f"A login on process A is known on process B; its key in Redis expires in {new[0].ttl} s.",
        keys.evidence(first=new),
    )


# ------------------------------------------------------------------ task 4: Redis goes away


@check("redis-down-degrades")
def redis_down_degrades(ctx: CheckContext) -> Pass:
    redis = ctx.proxy("redis")
    service = ctx.service(APP, ready=READY, proxies={"redis": redis})
    cookie = _login(service.url)
    home = _request(service.url, "GET", "/home", cookie=cookie)
    if not _home_ok(home) or home.body.get("user") != "ada":
        raise Fail(
            f"Before any fault, GET /home after logging in as ada gave {home.text()}: it "
            'should answer 200 with the items and user "ada".',
            _logs(service),
        )
    if redis.stats.command_count == 0:
        raise Fail(
            "Logging in and loading /home sent no command to Redis, so there is nothing to "
            "take away yet: this check turns Redis off. Keep sessions in Redis first (the "
            "sessions-shared check).",
        )
    # Redis vanishes from the network: open connections drop, new ones hang unanswered.
    redis.paused = True
    redis.drop_connections()
    before = redis.stats.snapshot()
    replies: list[Reply] = []
    try:
        for _ in range(OUTAGE_REQUESTS):
            reply = _request(service.url, "GET", "/home", cookie=cookie, timeout=3)
            replies.append(reply)
            if reply.status == 0 or redis.stats.since(before).connections > OUTAGE_ATTEMPTS:
                break
        tried = redis.stats.since(before).connections
    finally:
        redis.paused = False
    good = sum(1 for r in replies if _home_ok(r))
    evidence = Evidence(
        "while Redis was down",
        "table",
        (
            ("", "count"),
            [
                ("requests sent to /home, one at a time", str(len(replies))),
                ("answered 200 with the catalogue", str(good)),
                ("connections opened to Redis", str(tried)),
                *[("first bad answer", r.text()) for r in replies if not _home_ok(r)][:1],
            ],
        ),
    )
    bad = [r for r in replies if not _home_ok(r)]
    if bad and bad[0].status == 0 and "timed out" in bad[0].error:
        raise Fail(
            f"With Redis unreachable, a request to /home got no answer within 3 s (Redis "
            f"was tried over {tried} connection(s) by then). A Redis client waits for an answer "
            "forever unless told otherwise: give it socket timeouts well under a second "
            "(and no retries of its own), and let the breaker decide when to try again.",
            evidence,
            _logs(service),
        )
    if bad:
        raise Fail(
            f"With Redis down, {len(bad)} of {len(replies)} requests to /home failed (first: "
            f"{bad[0].text()}). The catalogue comes from PostgreSQL, which is fine: catch the "
            "session store being unavailable and answer 200 with the items and no user (a "
            "degraded page), not an error.",
            evidence,
            _logs(service),
        )
    if tried > OUTAGE_ATTEMPTS:
        raise Fail(
            f"Every page still answered, but {len(replies)} requests opened {tried} new "
            "connections to a Redis that does not answer: each request waits for the failure "
            "again. Put "
            "the Redis calls behind your CircuitBreaker so that after a few failures the "
            "rest are refused at once without touching Redis.",
            evidence,
        )
    deadline = time.monotonic() + RECOVERY_WAIT
    back = Reply(0, error="not sent")
    while time.monotonic() < deadline:
        back = _request(service.url, "GET", "/home", cookie=cookie, timeout=3)
        if _home_ok(back) and back.body.get("user") == "ada":
            service.stop()
            return Pass(
                f"With Redis unreachable, {good} of {len(replies)} pages still answered 200 "
                f"and only {tried} connections to Redis were tried; once it was back, the "
                "login was known again.",
                evidence,
            )
        time.sleep(0.2)
    raise Fail(
        f"Redis came back, but {RECOVERY_WAIT:g} s later /home still answers {back.text()} "
        "instead of knowing ada again. After its cool-down (keep it to a second or two) the "
        "breaker must let a trial call through, and close when it succeeds.",
        evidence,
    )
