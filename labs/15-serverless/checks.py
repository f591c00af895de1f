"""Checks for the serverless lab: the bill, the cold start and the time limit.

The cost model is called once (harness.bills) over a few hundred scenarios with price
tables made up for this run; the checker does the arithmetic itself and compares.

The handlers run on a small function platform that harness.py plays inside the learner's
process: each instance is a forked process that imports the handler's module once (the
cold start) and then serves invocations (warm starts); an invocation still running well
past its deadline is killed with its instance. Init work is counted where it lands:
connections at PostgreSQL's proxy, reads of the settings table in PostgreSQL's own
statistics (a view, a function or a join reads it too; a comment that names it does
not). The backfill is judged by what the checker's own image service was asked to
render, when, against each invocation's deadline, and by what PostgreSQL holds after.

Nothing is judged by how fast the machine is: an invocation that answers after its
deadline fails only if it started a thumbnail with less time left than its thumbnails
had been taking; one that gives up early fails only if it left more than two of its
own steps (and half its limit) unused.
"""

from __future__ import annotations

import json
import math
import random
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sdtutor.lab.checks import CheckContext, Evidence, Fail, Pass, check

HERE = Path(__file__).parent
HARNESS_FILE = "sdtutor_serverless_platform.py"  # its name in the sandbox
# The checker's own copy of imaging.py, so the learner's copy cannot make the work faster.
FILES: dict[str, str | bytes | Path] = {
    HARNESS_FILE: HERE / "harness.py",
    "imaging.py": HERE / "starter" / "imaging.py",
}

SECONDS_PER_MONTH = 30 * 24 * 3600
MB_PER_GB = 1024
REL = 1e-6  # how close a bill must be to the checker's (floating point, nothing more)

INSTANCES = 3  # environments the photo function gets at once
EVENTS = 30  # invocations sent to them in turn
WARM_TIMEOUT = 3.0  # seconds each photo invocation may take

PHOTOS = 16  # photos in the backfill job
ITEM_SECONDS = 0.1  # what one thumbnail takes the image service
LIMIT = 1.0  # each backfill invocation's time limit, in seconds
# The platform kills an invocation this long after its deadline. Lambda kills at the
# deadline; the grace is for a busy machine, where work started in good time can end
# late. An answer after the deadline is judged by what was started when (see _late_start).
GRACE = 2.0
MOST = PHOTOS + 2  # invocations the platform sends at most (3 are enough on a quiet machine)
BUDGET = 10.0  # seconds after which the platform starts no more invocations
REUSE = 2  # invocations an instance serves before it is reclaimed
SLACK = 0.3  # seconds an invocation may leave unused beyond two of its steps
INIT_SLACK = 0.1  # an instance's first moments (a request sent before may arrive then)


# ------------------------------------------------------------------ the bill, as it is


def fn_bill(requests: float, ms: float, mb: float, p: dict[str, Any]) -> float:
    """The function bill, the checker's way."""
    step = p["billing_granularity_ms"]
    billed_ms = math.ceil(ms / step) * step
    gb_s = requests * billed_ms / 1000 * mb / MB_PER_GB
    return (
        max(0.0, requests - p["free_requests"]) / 1e6 * p["price_per_million_requests"]
        + max(0.0, gb_s - p["free_gb_seconds"]) * p["price_per_gb_second"]
    )


def servers_for(requests: float, p: dict[str, Any]) -> int:
    return max(
        p["min_servers"],
        math.ceil(requests / SECONDS_PER_MONTH / p["server_requests_per_second"]),
    )


def server_bill(requests: float, p: dict[str, Any]) -> float:
    return servers_for(requests, p) * p["server_monthly_price"]


def first_reaching(bill: Callable[[int], float], target: float, low: int, high: int) -> int | None:
    """The smallest whole r in [low, high] with bill(r) >= target (bill never falls)."""
    if bill(high) < target:
        return None
    while low < high:
        middle = (low + high) // 2
        if bill(middle) >= target:
            high = middle
        else:
            low = middle + 1
    return low


def break_even(
    ms: float, mb: float, p: dict[str, Any], staircase: bool = True, steps: int = 40
) -> int | None:
    """The fewest requests a month at which functions cost at least the servers (looked
    for within `steps` steps of the server bill's staircase)."""
    per_server = p["server_requests_per_second"] * SECONDS_PER_MONTH
    servers, low = p["min_servers"], 0
    while servers < p["min_servers"] + steps:
        high = servers * per_server if staircase else 10**11
        found = first_reaching(
            lambda r: fn_bill(r, ms, mb, p), servers * p["server_monthly_price"], low, high
        )
        if found is not None or not staircase:
            return found
        low, servers = high + 1, servers + 1
    return None


# Bills a learner's model often matches instead: what each mistake looks like.
def _variant(**changes: Any) -> Callable[[float, float, float, dict[str, Any]], float]:
    def bill(requests: float, ms: float, mb: float, p: dict[str, Any]) -> float:
        step = p["billing_granularity_ms"]
        billed = ms if changes.get("exact") else math.ceil(ms / step) * step
        if changes.get("nearest"):
            billed = round(ms / step) * step
        gb_s = requests * billed / 1000 * mb / changes.get("mb_per_gb", MB_PER_GB)
        free_r = 0 if changes.get("no_free") else p["free_requests"]
        free_g = 0 if changes.get("no_free") else p["free_gb_seconds"]
        clamp = (lambda x: x) if changes.get("unclamped") else (lambda x: max(0.0, x))
        per_request = 0 if changes.get("no_requests") else p["price_per_million_requests"]
        return (
            clamp(requests - free_r) / 1e6 * per_request
            + clamp(gb_s - free_g) * p["price_per_gb_second"]
        )

    return bill


MISTAKES = [
    (
        _variant(exact=True),
        "bills each invocation's exact duration. The platform rounds every duration UP to "
        "billing_granularity_ms: with 100 ms, a 101 ms call is billed as 200 ms",
    ),
    (
        _variant(nearest=True),
        "rounds durations to the nearest step. The platform rounds UP: with 100 ms steps, "
        "a 101 ms call is billed as 200 ms, never as 100 ms",
    ),
    (
        _variant(no_requests=True),
        "leaves out the per-request charge (price_per_million_requests for each request "
        "past the free ones). At hundreds of millions of requests it is a large part of "
        "the bill",
    ),
    (
        _variant(no_free=True),
        "charges for the free tier. The first free_requests requests and free_gb_seconds "
        "GB-seconds of every month cost nothing",
    ),
    (
        _variant(unclamped=True),
        "goes below zero when traffic stays inside the free tier. A free allowance brings "
        "a charge down to zero, never below; take it off each charge on its own",
    ),
    (
        _variant(mb_per_gb=1000),
        "turns MB into GB by dividing by 1,000. The platform counts 1 GB as 1,024 MB "
        "(128 MB is 0.125 GB)",
    ),
]


# ------------------------------------------------------------------ scenarios


def _table(rng: random.Random) -> dict[str, Any]:
    return {
        "price_per_million_requests": rng.choice([0.20, 0.25, 0.40, 0.60]),
        "price_per_gb_second": rng.choice([0.0000166667, 0.0000133334, 0.0000025, 0.000018]),
        "billing_granularity_ms": rng.choice([1, 1, 100, 100, 10]),
        "free_requests": rng.choice([0, 1_000_000, 1_000_000, 2_000_000]),
        "free_gb_seconds": rng.choice([0, 400_000, 400_000, 180_000]),
        "server_monthly_price": round(rng.uniform(25, 400), 2),
        "server_requests_per_second": rng.choice([40, 80, 150, 300, 600]),
        "min_servers": rng.choice([1, 2, 2, 3]),
    }


def _duration(rng: random.Random) -> float:
    if rng.random() < 0.2:
        return float(rng.choice([100, 200, 300, 1000]))  # exactly on a step
    return round(rng.uniform(1, 2500), rng.choice([0, 1]))


MEMORY = [128, 256, 512, 1024, 1536, 1769, 2048, 3008, 10240]


def scenarios(seed: int) -> list[dict[str, Any]]:
    """Bills to compute: many workloads on price tables made up for this run."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    while len(out) < 240:
        p = _table(rng)
        for _ in range(6):
            requests = int(10 ** rng.uniform(3, 9.5))
            ms, mb = _duration(rng), rng.choice(MEMORY)
            out.append(
                {"requests": requests, "duration_ms": ms, "memory_mb": mb, "prices": p}
                | {"want": ["functions", "server"]}
            )
    # Traffic that fills whole servers exactly: n servers, not n + 1.
    for _ in range(8):
        p = _table(rng)
        full = rng.randint(p["min_servers"], p["min_servers"] + 6)
        requests = full * p["server_requests_per_second"] * SECONDS_PER_MONTH
        out.append(
            {"requests": requests, "duration_ms": 100.0, "memory_mb": 128, "prices": p}
            | {"want": ["server"]}
        )
    # Break-even: tables where it exists, a third of them past what the minimum fleet
    # carries (small functions next to small, dear servers).
    beyond = tries = 0
    while len(out) < 288 and tries < 2000:
        tries += 1
        p, ms, mb = _table(rng), _duration(rng), rng.choice(MEMORY)
        want_beyond = beyond < 14
        if want_beyond:
            # A server price between what the minimum fleet's traffic costs as functions
            # (per server) and what one server's worth of extra traffic costs: the bills
            # cross only after the fleet has grown.
            per_server = p["server_requests_per_second"] * SECONDS_PER_MONTH
            full = p["min_servers"] * per_server
            low = fn_bill(full, ms, mb, p) / p["min_servers"]
            high = fn_bill(full + per_server, ms, mb, p) - fn_bill(full, ms, mb, p)
            if high - low < 1:
                continue
            p["server_monthly_price"] = round(low + (high - low) * rng.uniform(0.1, 0.6), 2)
        truth = break_even(ms, mb, p)
        if truth is None:
            continue
        past = truth > p["min_servers"] * p["server_requests_per_second"] * SECONDS_PER_MONTH
        if past != want_beyond:
            continue
        beyond += past
        out.append(
            {"requests": truth, "duration_ms": ms, "memory_mb": mb, "prices": p}
            | {"want": ["break_even"], "truth": truth}
        )
    return out


BILLS_TIMEOUT = 8.0
"""Seconds for all the bills (a sound model needs a fraction of one)."""


def _cost_answers(ctx: CheckContext) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The scenarios and the learner's answers: one learner call shared by both checks (a
    failure too, so that a model that hangs costs its time once)."""
    return ctx.once("bills", lambda: _call_cost_model(ctx))


def _call_cost_model(ctx: CheckContext) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    cases = scenarios(secrets.randbits(32))
    run = ctx.run(
        HARNESS_FILE,
        "bills",
        "cost.py",
        cases,
        files=FILES,
        timeout=min(BILLS_TIMEOUT, ctx.lab.time_limit),
    )
    if run.timed_out or run.limit:
        raise Fail(
            f"Computing {len(cases)} bills did not finish ({run.limit or 'out of time'}): "
            "does break_even_requests loop one request at a time, or forever? Search by "
            "halving, or solve the line's equation.",
            Evidence("its output", "text", run.output or "(none)"),
        )
    if not run.ok:
        raise Fail(
            f"cost.py could not be used: {run.error}",
            Evidence("traceback", "text", run.traceback or run.output or "(none)"),
        )
    return cases, run.value


def _close(got: Any, want: float) -> bool:
    """Equal but for floating point, or for a bill rounded to the cent."""
    return isinstance(got, int | float) and math.isclose(got, want, rel_tol=REL, abs_tol=0.005)


def _dollars(value: float) -> str:
    """Whole dollars from $1,000, cents from $1, hundredths of a cent below."""
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:,.2f}" if abs(value) >= 1 else f"{value:.4f}"


def _money(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("error") or value.get("other"))[:40]
    return f"${_dollars(value)}" if isinstance(value, float) else f"{value:,}"


def _spread(rows: list[Any]) -> list[Any]:
    """Rows from as many different price tables as there are, first ones first."""
    first: dict[int, Any] = {}
    for row in rows:
        first.setdefault(id(row[0]["prices"]), row)
    chosen = list(first.values())
    return chosen + [r for r in rows if all(r is not c for c in chosen)]


def _short(n: float) -> str:
    """A count at a glance: 17.9M, 400k, 6,150."""
    if n >= 1e6:
        return f"{n / 1e6:,.1f}M".replace(".0M", "M")
    if n >= 1e4:
        return f"{n / 1e3:,.0f}k"
    return f"{n:,g}"


def _gb_s(s: dict[str, Any]) -> float:
    step = s["prices"]["billing_granularity_ms"]
    return s["requests"] * math.ceil(s["duration_ms"] / step) * step / 1000 * s["memory_mb"] / 1024


def _bill_table(rows: list[tuple[dict[str, Any], Any, float]], title: str) -> Evidence:
    return Evidence(
        title,
        "table",
        (
            ("requests", "ms", "MB", "step", "free req", "free GB-s", "right $", "yours"),
            [
                (
                    _short(s["requests"]),
                    f"{s['duration_ms']:g}",
                    str(s["memory_mb"]),
                    str(s["prices"]["billing_granularity_ms"]),
                    _short(s["prices"]["free_requests"]),
                    _short(s["prices"]["free_gb_seconds"]),
                    _dollars(want),
                    _money(got).lstrip("$")[:12],
                )
                for s, got, want in rows[:6]
            ],
        ),
    )


def _errors(rows: list[tuple[dict[str, Any], Any, Any]], name: str, wants: str) -> None:
    broken = [got for _, got, _ in rows if isinstance(got, dict) and "error" in got]
    if broken:
        raise Fail(f"{name} raised {broken[0]['error']} ({len(broken)} of {len(rows)} calls).")
    other = [got for _, got, _ in rows if isinstance(got, dict)]
    if other:
        raise Fail(
            f"{name} returned {other[0]['other']} in {len(other)} of {len(rows)} calls; it "
            f"should return {wants}."
        )


@check("function-bill")
def function_bill(ctx: CheckContext) -> Pass:
    cases, answers = _cost_answers(ctx)
    rows = [
        (
            s,
            a.get("functions"),
            fn_bill(s["requests"], s["duration_ms"], s["memory_mb"], s["prices"]),
        )
        for s, a in zip(cases, answers, strict=True)
        if "functions" in s["want"]
    ]
    _errors(rows, "monthly_cost_functions", "the month's bill in dollars")
    wrong = _spread([r for r in rows if not _close(r[1], r[2])])
    wrong[:6] = sorted(wrong[:6], key=lambda r: -r[2])  # the biggest bills first
    if wrong:
        table = _bill_table(wrong, f"{len(wrong)} of {len(rows)} bills differ; the first few")
        s = wrong[0][0]
        start = (
            f"{len(wrong)} of {len(rows)} monthly bills differ from the price table's. "
            f"For example {s['requests']:,} requests of {s['duration_ms']:g} ms at "
            f"{s['memory_mb']} MB should cost ${_dollars(wrong[0][2])}; yours said "
            f"{_money(wrong[0][1])}."
        )
        for model, why in MISTAKES:
            fits = all(
                _close(got, model(x["requests"], x["duration_ms"], x["memory_mb"], x["prices"]))
                for x, got, _ in wrong
            )
            if fits:
                raise Fail(f"{start} Your model {why}.", table)
        raise Fail(
            f"{start} Build it from its parts: the duration rounded up to the billing step, "
            "GB-seconds (requests x seconds x GB), the free allowances taken off each "
            "charge (never below zero), then the per-request and the GB-second charges.",
            table,
        )
    big = max(rows, key=lambda r: r[2])
    s = big[0]
    share = (
        (s["requests"] - s["prices"]["free_requests"])
        / 1e6
        * s["prices"]["price_per_million_requests"]
    )
    return Pass(
        f"All {len(rows)} monthly bills match. The largest, {s['requests']:,} requests of "
        f"{s['duration_ms']:g} ms at {s['memory_mb']} MB, is ${big[2]:,.2f}: "
        f"${share:,.2f} of it for the requests, the rest for {_gb_s(s) / 1e6:,.1f} million "
        "GB-seconds.",
    )


def _mixed(rows: list[Any]) -> list[Any]:
    """Break-even rows inside the minimum fleet and past it, alternating."""
    past = [r for r in rows if servers_for(r[2], r[0]["prices"]) > r[0]["prices"]["min_servers"]]
    within = [r for r in rows if all(r is not p for p in past)]
    return [r for pair in zip(within, past, strict=False) for r in pair]


@check("break-even")
def break_even_check(ctx: CheckContext) -> Pass:
    cases, answers = _cost_answers(ctx)
    servers = [
        (s, a.get("server"), server_bill(s["requests"], s["prices"]))
        for s, a in zip(cases, answers, strict=True)
        if "server" in s["want"]
    ]
    _errors(servers, "monthly_cost_server", "the month's bill in dollars")
    wrong = [r for r in servers if not _close(r[1], r[2])]
    if wrong:
        s, got, want = wrong[0]
        p = s["prices"]
        rate = s["requests"] / SECONDS_PER_MONTH
        one_more = all(_close(g, w + x["prices"]["server_monthly_price"]) for x, g, w in wrong)
        why = (
            "Traffic that fills n servers exactly needs n of them: round the division up, "
            "rather than rounding down and adding one."
            if one_more
            else "Count whole servers: a server carries only so much traffic, and you "
            "cannot buy half of one."
        )
        raise Fail(
            f"{len(wrong)} of {len(servers)} server bills differ. {s['requests']:,} requests a "
            f"month is {rate:,.1f} requests/s; at {p['server_requests_per_second']} per server "
            f"that takes {servers_for(s['requests'], p)} servers (never fewer than "
            f"{p['min_servers']}), ${want:,.2f} a month; yours said {_money(got)}. {why}",
        )
    evens = [
        (s, a.get("break_even"), s["truth"])
        for s, a in zip(cases, answers, strict=True)
        if "break_even" in s["want"]
    ]
    _errors(
        evens,
        "break_even_requests",
        "the smallest number of requests a month at which monthly_cost_functions reaches "
        "monthly_cost_server (every table here has one below 100 billion)",
    )
    off = [r for r in evens if not _close(r[1], r[2])]
    table = Evidence(
        "break-even traffic, requests a month",
        "table",
        (
            ("ms", "MB", "server req/s", "servers", "right", "yours"),
            [
                (
                    f"{s['duration_ms']:g}",
                    str(s["memory_mb"]),
                    str(s["prices"]["server_requests_per_second"]),
                    f"{s['prices']['min_servers']} to {servers_for(want, s['prices'])}",
                    f"{want:,}",
                    _money(got),
                )
                for s, got, want in (off or _mixed(evens))[:6]
            ],
        ),
    )
    if off:
        s, got, want = off[0]
        p = s["prices"]
        flat = all(
            _close(g, break_even(x["duration_ms"], x["memory_mb"], x["prices"], False) or -1)
            for x, g, _ in off
        )
        start = (
            f"{len(off)} of {len(evens)} break-even answers differ. At {s['duration_ms']:g} ms "
            f"and {s['memory_mb']} MB, functions first cost as much as the servers at "
            f"{want:,} requests a month ({want / SECONDS_PER_MONTH:,.1f} requests/s, "
            f"{servers_for(want, p)} servers); yours said {_money(got)}."
        )
        if flat:
            raise Fail(
                f"{start} Your answers compare with the minimum fleet only, but by then "
                "that fleet is full: more traffic needs more servers, so the server bill "
                "climbs in steps. Look for the crossing step by step.",
                table,
            )
        raise Fail(
            f"{start} Find the smallest traffic where monthly_cost_functions reaches "
            "monthly_cost_server for the same traffic. Both only grow with traffic; the "
            "server bill grows in steps, one server at a time.",
            table,
        )
    far = max(evens, key=lambda r: r[2])
    return Pass(
        f"Server bills and all {len(evens)} break-even points match. The furthest: "
        f"{far[2]:,} requests a month ({far[2] / SECONDS_PER_MONTH:,.0f} requests/s) at "
        f"{far[0]['duration_ms']:g} ms and {far[0]['memory_mb']} MB.",
        table,
    )


# ------------------------------------------------------------------ the platform's runs


def _platform_failure(run: Any, what: str) -> None:
    if run.timed_out or run.limit:
        raise Fail(
            f"The platform's run of {what} did not finish ({run.limit or 'out of time'}).",
            Evidence("its output", "text", run.output or "(none)"),
        )
    if not run.ok:
        raise Fail(
            f"The platform could not run {what}: {run.error}",
            Evidence("traceback", "text", run.traceback or run.output or "(none)"),
        )
    for instance in run.value["instances"]:
        if not instance["ready"]:
            raise Fail(
                f"An instance of {what} could not start (its init code, outside the "
                f"handler, failed): {instance.get('error')}",
                Evidence("traceback", "text", instance.get("traceback") or "(none)"),
            )


def _raised(invocation: dict[str, Any], n: int, what: str) -> None:
    if invocation.get("crashed"):
        raise Fail(
            f"Invocation {n} of {what} ended its own process before answering: a handler "
            "returns, it does not exit.",
        )
    if not invocation.get("ok") and not invocation.get("killed"):
        raise Fail(
            f"Invocation {n} of {what} raised {invocation.get('error')}",
            Evidence("traceback", "text", invocation.get("traceback") or "(none)"),
        )


# Reads of the settings table, as PostgreSQL counts them: every scan of the table, whether
# a statement names it, reads it through a view or a function, or joins it in.
SCANS = (
    "SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables "
    "WHERE relid = 'settings'::regclass"
)


def _flush_own_statistics(ctx: CheckContext) -> None:
    """The checker's own counts reach the shared ones before its next statement (a
    session otherwise sends them at most once a second, or when it ends)."""
    if int(ctx.value("SELECT current_setting('server_version_num')::int")) >= 150000:
        ctx.query("SELECT pg_stat_force_next_flush()")
    else:  # PostgreSQL 14 and older: the statistics collector, half a second behind
        time.sleep(0.7)


def _settings_scans(ctx: CheckContext, since: Any) -> int:
    """Scans of settings once the sessions opened since `since` have ended: a session's
    counts reach the shared statistics when it ends, just after it leaves pg_stat_activity,
    so the count is read until it holds still."""
    stop = time.monotonic() + 5
    while time.monotonic() < stop:
        open_now = ctx.value(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_start >= %s",
            (since,),
        )
        if not open_now:
            break
        time.sleep(0.05)
    last = -1
    while True:
        ctx.query("SELECT pg_stat_clear_snapshot()")
        now = int(ctx.value(SCANS) or 0)
        if now == last or time.monotonic() > stop:
            return now
        last = now
        time.sleep(0.1)


def _times(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n:,} times")


@check("init-once")
def init_once(ctx: CheckContext) -> Pass:
    cdn = f"https://cdn-{secrets.token_hex(3)}.example.net/"
    ctx.query("UPDATE settings SET value = %s WHERE name = 'cdn_base'", (cdn,))
    paths = dict(ctx.query("SELECT id, path FROM photos"))
    rng = random.Random()
    ids = [rng.choice(sorted(paths)) for _ in range(EVENTS)]
    _flush_own_statistics(ctx)
    since = ctx.value("SELECT clock_timestamp()")
    before = _settings_scans(ctx, since)
    run = ctx.run(
        HARNESS_FILE,
        "warm",
        "photo.py",
        [{"photo_id": i} for i in ids],
        INSTANCES,
        WARM_TIMEOUT,
        files=FILES,
    )
    _platform_failure(run, "photo.py")
    report = run.value
    invocations = report["invocations"]
    for n, inv in enumerate(invocations, 1):
        _raised(inv, n, "photo.py")
        if inv.get("killed"):
            raise Fail(
                f"Invocation {n} (photo {ids[n - 1]}) was still running after "
                f"{WARM_TIMEOUT:g} s and the platform killed it. One photo is one query.",
            )
        value = inv["value"]
        want = cdn + paths[ids[n - 1]]
        if not isinstance(value, dict) or value.get("url") != want:
            raise Fail(
                f'Invocation {n}, {{"photo_id": {ids[n - 1]}}}, returned {json.dumps(value)}; '
                f'it should return {{"photo_id": {ids[n - 1]}, "url": "{want}"}}: the '
                "cdn_base setting (the checker set it just before the instances started) "
                "followed by the photo's path.",
            )
    reads = _settings_scans(ctx, since) - before
    started = len(report["instances"])
    pg = run.server["postgres"]
    table = Evidence(
        "what PostgreSQL saw",
        "table",
        (
            ("", "count"),
            [
                ("instances started (cold starts)", str(started)),
                ("invocations (warm and cold)", str(len(invocations))),
                ("connections opened", str(pg.connections)),
                ("reads of the settings table", str(reads)),
                ("statements in all", str(pg.statement_count)),
            ],
        ),
    )
    seen = (
        f"{len(invocations)} invocations on {started} instances opened {pg.connections} "
        f"connections to PostgreSQL and read the settings table {_times(reads)}."
    )
    if pg.connections > 2 * started:
        raise Fail(
            f"{seen} A connection per invocation pays the handshake, the login and a new "
            "server process every time, and at scale it runs PostgreSQL out of connection "
            "slots. Connect once per instance: in the init code outside the handler (or "
            "on first use, kept in a module-level variable), and reuse it when warm.",
            table,
        )
    if reads > 2 * started:
        raise Fail(
            f"{seen} The connection is reused, but warm invocations still load the "
            "settings (PostgreSQL counted every scan of the table, however the statement "
            "reached it). Settings belong to the instance's init too: load them once when the "
            "instance starts and keep them in memory for its warm invocations.",
            table,
        )
    if pg.connections == 0:
        raise Fail(f"{seen} The answers were right without PostgreSQL: how?", table)
    return Pass(
        f"{seen} Init ran once per instance; warm invocations reused it.",
        table,
    )


def _asked_at(headers: Any, arrived: float) -> float:
    """When the client asked: imaging.py sends its monotonic clock (the machine's, as the
    platform's deadlines are), so that a request that waits for this busy server is timed
    from when the handler made it. A missing or implausible value: when it arrived."""
    try:
        sent = float(headers.get("X-Asked-At", ""))
    except ValueError:
        return arrived
    return sent if arrived - 10 <= sent <= arrived else arrived


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The standard library's backlog is 5: a handler that asks for 16 thumbnails at once
    # would see connections dropped and retried a second later, which is not its fault.
    request_queue_size = 128


@dataclass
class Render:
    """One thumbnail the image service was asked for: when it was asked (the moment the
    client sent, or else when the request arrived) and when the render ended (None while
    it runs)."""

    photo: int
    key: str
    started: float
    ended: float | None = None


class ImageService:
    """The image service the backfill calls: renders a thumbnail in ITEM_SECONDS, counting.

    POST /thumbnails/ID renders one (recorded as it arrives, with the key it will return);
    GET /progress tells the platform how many photos and renders it has seen, so that it
    stops sending the event once going on would show nothing new.
    """

    def __init__(self) -> None:
        self.made: list[Render] = []
        self.lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                arrived = time.monotonic()
                match = re.fullmatch(r"/thumbnails/(\d{1,9})", self.path)
                if not match:
                    self.send_error(404)
                    return
                render = Render(int(match.group(1)), "", _asked_at(self.headers, arrived))
                render.key = f"thumbs/{render.photo}-{secrets.token_hex(4)}.jpg"
                with service.lock:
                    service.made.append(render)
                time.sleep(ITEM_SECONDS)
                render.ended = time.monotonic()
                self._answer({"key": render.key})

            def do_GET(self) -> None:
                if self.path != "/progress":
                    self.send_error(404)
                    return
                with service.lock:
                    photos = len({r.photo for r in service.made})
                    renders = len(service.made)
                self._answer({"photos": photos, "renders": renders})

            def _answer(self, value: dict[str, Any]) -> None:
                body = json.dumps(value).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the invocation that asked was killed meanwhile
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ImageService:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _outcome(inv: dict[str, Any]) -> str:
    if inv.get("killed"):
        return "KILLED"
    if not inv.get("ok"):
        return "raised"
    value = inv.get("value")
    done = isinstance(value, dict) and value.get("done") is True
    return "done" if done else "not done yet"


def _during(inv: dict[str, Any], made: list[Render]) -> list[Render]:
    """The renders an invocation asked for, in the order they arrived: from its start to
    the next invocation's (a request sent just before the answer may arrive after it on a
    busy machine; between invocations the instance is frozen and sends nothing)."""
    mine = [r for r in made if inv["started"] <= r.started < inv["until"]]
    return sorted(mine, key=lambda r: r.started)


def _in_init(instances: list[dict[str, Any]], made: list[Render]) -> list[Render]:
    """Renders asked for while an instance's init code ran, before any event reached it
    (past its first moments, when a request the last invocation sent may still arrive)."""
    return [
        r
        for r in made
        if any(i["began"] + INIT_SLACK <= r.started <= i["ready_at"] for i in instances)
    ]


def _pace(inv: dict[str, Any], renders: list[Render]) -> float:
    """The longest a step of an invocation may have taken, as the handler timed it: the
    image service sees only when each render arrived, so a step is given the whole span
    from the arrival before it to the arrival after it (the invocation's start and its
    answer at the ends). Generous on purpose: on a busy machine requests arrive late, and
    a handler that kept back two of its own steps must not be told it gave up early."""
    marks = sorted([inv["started"], *(r.started for r in renders), inv["ended"]])
    spans = [c - a for a, _, c in zip(marks, marks[1:], marks[2:], strict=False)]
    return max([ITEM_SECONDS, *spans])


def _late_start(inv: dict[str, Any], renders: list[Render]) -> tuple[Render, float, float] | None:
    """The first render an invocation started with less time left than its steps had been
    taking it (or after its deadline): (render, seconds left, seconds a step took). Times
    are when the handler asked (imaging.py says), so a busy checker is not held against
    it. None: it started nothing it could not expect to finish, whatever made it late."""
    step = ITEM_SECONDS
    for i, render in enumerate(renders):
        if i:
            step = max(step, render.started - renders[i - 1].started)
        left = inv["deadline"] - render.started
        if left < step:
            return render, left, step
    return None


def _redone(invocations: list[dict[str, Any]], made: list[Render], twice: list[int]) -> str:
    """Why work was done again: a render cut off and thrown away, every invocation starting
    over, or a new instance forgetting what the last one did."""
    first: dict[int, tuple[int, dict[str, Any], Render]] = {}  # photo -> its first render
    for n, inv in enumerate(invocations, 1):
        for render in _during(inv, made):
            first.setdefault(render.photo, (n, inv, render))
    for photo in twice:
        if photo not in first:
            continue
        n, inv, render = first[photo]
        if render.ended is None or render.ended > inv["ended"]:
            return (
                f"photo {photo}'s first render was still running when invocation {n} "
                "answered, so its thumbnail was never saved and a later invocation made "
                "it again. Decide before a photo whether it fits, and then finish it: "
                "work cut off halfway is paid for and thrown away."
            )
    keep = (
        " Record progress where the next invocation finds it, whichever instance runs "
        "it: in the database, for this job, and skip what is done."
    )
    same_instance = False
    seen: dict[int, int] = {}  # photo -> instance that made it first
    for inv in invocations:
        for render in _during(inv, made):
            if seen.get(render.photo, -1) == inv["instance"]:
                same_instance = True
            seen.setdefault(render.photo, inv["instance"])
    if same_instance:
        return "each invocation started again from the beginning of the list." + keep
    return (
        "invocations on a warm instance went on where the last one stopped, but each "
        "new instance started over. An instance's memory is a cache that may be empty: "
        "the platform reclaims instances whenever it likes." + keep
    )


def _count(n: int, thing: str) -> str:
    return f"{n:,} {thing}{'' if n == 1 else 's'}"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


@check("stops-in-time")
def stops_in_time(ctx: CheckContext) -> Pass:
    rng = random.Random()
    ids = sorted(rng.sample(range(1, 201), PHOTOS))
    job = f"backfill-{secrets.token_hex(3)}"
    ctx.query("DELETE FROM thumbnails WHERE photo_id = ANY(%s)", (ids,))
    with ImageService() as images:
        run = ctx.run(
            HARNESS_FILE,
            "until_done",
            "backfill.py",
            {"job": job, "photo_ids": ids},
            LIMIT,
            GRACE,
            MOST,
            REUSE,
            f"{images.url}/progress",
            BUDGET,
            files=FILES,
            env={"IMAGE_SERVICE_URL": images.url},
        )
        with images.lock:
            made = list(images.made)
    if run.ok and isinstance(run.value, dict):
        early = _in_init(run.value.get("instances", []), made)
        if early:
            raise Fail(
                f"The image service was asked for {_count(len(early), 'thumbnail')} (photo "
                f"{early[0].photo} first) while an instance's init code ran, before any "
                "event had reached it. Init runs once per instance, with a limit of its "
                "own, to get ready (connect, load settings); the job is the handler's, in "
                "invocations that say how much time they have.",
            )
    _platform_failure(run, "backfill.py")
    invocations = run.value["invocations"]
    for inv, after in zip(invocations, [*invocations[1:], {"started": math.inf}], strict=True):
        inv["until"] = after["started"]
    stored = dict(
        ctx.query("SELECT photo_id, thumb_key FROM thumbnails WHERE photo_id = ANY(%s)", (ids,))
    )
    asked = Counter(r.photo for r in made)
    issued: dict[int, set[str]] = {}
    for r in made:
        issued.setdefault(r.photo, set()).add(r.key)
    rows = []
    for n, inv in enumerate(invocations, 1):
        left = inv["deadline"] - inv["ended"]
        rows.append(
            (
                str(n),
                str(inv["instance"] + 1),
                str(len(_during(inv, made))),
                _outcome(inv),
                _ms(inv["ended"] - inv["started"]),
                _ms(left) if left >= 0 else f"{_ms(-left)} late",
            )
        )
    table = Evidence(
        f"each invocation (limit {_ms(LIMIT)}; a thumbnail takes {_ms(ITEM_SECONDS)})",
        "table",
        (
            ("invocation", "instance", "thumbnails", "returned", "time used", "left"),
            rows,
        ),
    )
    for n, inv in enumerate(invocations, 1):
        _raised(inv, n, "backfill.py")
    late: list[str] = []  # invocations that answered late through no fault of their own
    for n, inv in enumerate(invocations, 1):
        over = inv["ended"] - inv["deadline"]
        if over <= 0 and not inv.get("killed"):
            continue
        renders = _during(inv, made)
        culprit = _late_start(inv, renders)
        if culprit:
            render, left, step = culprit
            when = (
                f"{_ms(-left)} after its limit"
                if left < 0
                else f"with {_ms(left)} of its {_ms(LIMIT)} left"
            )
            after = sum(1 for r in renders if r.started > inv["deadline"] and r is not render)
            more = f" (and {after} more after its limit)" if after else ""
            why = (
                f"It started photo {render.photo}'s thumbnail {when}{more}, when a step "
                f"had been taking it {_ms(step)}."
            )
        else:
            why = ""
        if inv.get("killed"):
            cut = [r for r in renders if r.ended is None or r.ended >= inv["ended"] - 0.05]
            parts = [
                f"Invocation {n} was still running {GRACE:g} s after its {LIMIT:g} s limit, "
                "so the platform killed it (and its instance).",
                why,
                f"Photo {cut[0].photo}'s thumbnail was made and never saved." if cut else "",
                "A killed invocation counts as a failure and is retried, redoing what it "
                "had not recorded. Before each photo, look at "
                "context.get_remaining_time_in_millis() and return, with done false, while "
                "one more photo would still fit.",
            ]
            raise Fail(" ".join(part for part in parts if part), table)
        if culprit:
            raise Fail(
                f"Invocation {n} answered {_ms(over)} after its {LIMIT:g} s limit: on a "
                f"function platform it would have been killed there. {why} Before each "
                "photo, look at context.get_remaining_time_in_millis() and return, with "
                "done false, unless one more step (as long as your slowest so far) and a "
                "margin still fit.",
                table,
            )
        if not renders:
            raise Fail(
                f"Invocation {n} answered {_ms(over)} after its {LIMIT:g} s limit without "
                "asking for a single thumbnail: on a function platform it would have been "
                "killed there. What did it spend its time on?",
                table,
            )
        late.append(f"{n} ({_ms(over)})")
    missing = [p for p in ids if p not in stored]
    twice = sorted(p for p, count in asked.items() if count > 1)
    lost = [p for p in ids if p in stored and stored[p] not in issued.get(p, set())]
    last = invocations[-1] if invocations else {}
    if missing and _outcome(last) == "done":
        raise Fail(
            f"The last invocation returned done, but {len(missing)} of {PHOTOS} photos "
            f"still have no thumbnail (photo {missing[0]}, ...). Say done only when "
            "every photo of the job has one.",
            table,
        )
    if twice:
        others = f" ({len(twice)} photos were made more than once)" if len(twice) > 1 else ""
        so_far = (
            f"After {len(invocations)} invocations, {len(missing)} of {PHOTOS} photos still "
            "have no thumbnail, and "
            if missing
            else "Every photo has its thumbnail, but "
        )
        raise Fail(
            f"{so_far}photo {twice[0]}'s was made {_times(asked[twice[0]])}{others}: "
            + _redone(invocations, made, twice),
            table,
        )
    if lost:
        raise Fail(
            f"The thumbnail key stored for photo {lost[0]}, {stored[lost[0]]!r}, is not one "
            f"the image service made for it ({len(lost)} of {PHOTOS} photos are like that): "
            "call make_thumbnail for each photo and store the key it returns.",
            table,
        )
    if not missing and _outcome(last) != "done":
        raise Fail(
            f"All {PHOTOS} thumbnails are made, but after {len(invocations)} invocations the "
            'handler still has not returned {"done": true}: the platform would go on '
            "invoking it forever.",
            table,
        )
    for n, inv in enumerate(invocations, 1):
        if _outcome(inv) != "not done yet":
            continue
        renders = _during(inv, made)
        left, step = inv["deadline"] - inv["ended"], _pace(inv, renders)
        if left > max(LIMIT / 2, 2 * step + SLACK):
            made_here = (
                f"after {_count(len(renders), 'thumbnail')} (its slowest step took {_ms(step)})"
                if renders
                else "without asking for a single thumbnail"
            )
            open_ = [r for r in renders if r.ended is None or r.ended > inv["ended"]]
            frozen = (
                " Work left to a thread is frozen with the instance once the handler "
                "answers, as on a real platform."
            )
            thread = (
                f" It answered while photo {open_[0].photo}'s thumbnail was still being "
                f"made.{frozen}"
                if open_
                else frozen
                if not renders
                else ""
            )
            raise Fail(
                f"Invocation {n} returned done false with {_ms(left)} of its {_ms(LIMIT)} "
                f"still left, {made_here}.{thread} "
                "Every invocation is billed and may start cold: use the time each one "
                "has, and stop only when one more photo might not fit.",
                table,
            )
    if missing:
        stalled = [n for n, inv in enumerate(invocations, 1) if not _during(inv, made)]
        if stalled:
            raise Fail(
                f"Invocation {stalled[0]} returned done false without asking for a single "
                "thumbnail, so the platform stopped sending the job, with "
                f"{len(missing)} of {PHOTOS} photos still without one. Every invocation "
                "should move the job on: as many photos as fit in its time.",
                table,
            )
        slowest = max(_pace(inv, _during(inv, made)) for inv in invocations)
        crawling = slowest > 3 * ITEM_SECONDS
        raise Fail(
            f"After {len(invocations)} invocations, {len(missing)} of {PHOTOS} photos still "
            f"have no thumbnail, and the platform stopped sending the job. Steps took up "
            f"to {_ms(slowest)} (a thumbnail alone takes {_ms(ITEM_SECONDS)})"
            + (
                ": the machine seems very busy; try again when it is quieter."
                if crawling
                else ". Make more photos in each invocation: stop only when one more might not fit."
            ),
            table,
        )
    how = (
        "each invocation stopped before its limit and the next one picked up where it left off"
        if len(invocations) > 1
        else "all in one invocation, well inside its limit"
    )
    busy = (
        f" Invocation {', '.join(late)} answered after its limit, but every thumbnail was "
        "started with time to spare: the machine was busy, and that is not held against "
        "you."
        if late
        else ""
    )
    return Pass(
        f"{PHOTOS} photos in {len(invocations)} invocation(s), none killed, none made twice: "
        f"{how}.{busy}",
        table,
    )
