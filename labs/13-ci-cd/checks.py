"""Checks for the ci-cd lab: percentage flags, a canary gate, and a pull request's pipeline.

No server: the checker plays every peer. flags.py is called through harness.py for
20,000 users at several percentages in ONE learner process, and again in a second
process; the harness hands back the raw answers, one character per call, and every
verdict is reached here. canary.py's decide() is called once per recorded canary run,
all in one learner process. The workflow is data: it is parsed here as YAML (never run),
and judged as GitHub would read it, its jobs as a graph of `needs`.

The checks of one `lab check` share each learner call through `ctx.once` (a flags.py
that hangs is run once, not four times).
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path
from typing import Any

import yaml

from sdtutor.lab.checks import CheckContext, Evidence, Fail, Pass, check

FLAGS, CANARY = "flags.py", "canary.py"
WORKFLOW = ".github/workflows/ci.yml"
"""The workflow, where GitHub looks for it in a repository."""
HARNESS = Path(__file__).with_name("harness.py")
HARNESS_FILE = "sdtutor_cicd_harness.py"  # its name in the sandbox

# ------------------------------------------------------------------ flags

USERS = [f"user-{i}" for i in range(1, 20_001)]
FLAG, OTHERS = "new-checkout", ("dark-mode", "search-v2")
STEPS = (0, 1, 10, 25, 50, 100)
ASKS: list[list[Any]] = [
    *([FLAG, p] for p in STEPS),
    [FLAG, 10],  # the same question again, in the same process
    *([other, p] for other in OTHERS for p in (10, 50)),
]
AGAIN: list[list[Any]] = [[FLAG, 10], [FLAG, 50]]
"""What the second process is asked."""
SIGMAS = 6.0
"""How many standard deviations two flags' overlap may stray from independent draws."""


def _first_line(text: str | None) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[0].strip().rstrip(".") if lines else "(no message)"


def _ask_flags(ctx: CheckContext, asks: list[list[Any]], fresh: bool = False) -> dict[str, Any]:
    """is_enabled for every user at each ask, in one learner process (`fresh`: a new
    interpreter, with a str hash salt of its own)."""
    run = ctx.run(
        HARNESS_FILE, "flags", FLAGS, USERS, asks, files={HARNESS_FILE: HARNESS}, fresh=fresh
    )
    calls = len(USERS) * len(asks)
    if run.timed_out or run.limit:
        within = f"within {ctx.lab.time_limit:g} s" if run.timed_out else f"({run.limit} limit)"
        raise Fail(
            f"{calls:,} calls of is_enabled did not finish {within}. A flag is checked on "
            f"every request: it must be a hash and a comparison, with no network, file or "
            f"sleep per call.",
            Evidence("its output", "text", run.output or "(none)"),
        )
    if not run.ok:
        raise Fail(
            f"Calling is_enabled in flags.py failed: {_first_line(run.error)}.",
            Evidence("traceback", "text", run.traceback or run.error or "(none)"),
        )
    value = run.value if isinstance(run.value, dict) else {}
    if "error" in value:
        flag, percent = value.get("ask", ["?", "?"])
        raise Fail(
            f"is_enabled({flag!r}, {value.get('user')!r}, {percent!r}) raised "
            f"{_first_line(value['error'])}. User ids are strings such as 'user-42', and "
            f"the percentage a number from 0 to 100."
        )
    answers = value.get("answers")
    if not isinstance(answers, list) or len(answers) != len(asks):
        raise Fail("The harness got no answers back from is_enabled.")
    if value.get("odd"):
        raise Fail(
            f"{value['odd']}: is_enabled must answer True or False, so that a caller can "
            f"write `if is_enabled(...)` and a log can say which it was."
        )
    return {"answers": answers}


def _flag_answers(ctx: CheckContext) -> list[str]:
    """The answers to ASKS, asked once for the checks of one `lab check`."""
    got = ctx.once("flags", lambda: _ask_flags(ctx, ASKS))
    return list(got["answers"])


def _on(answers: str) -> set[int]:
    return {i for i, c in enumerate(answers) if c == "1"}


def _tolerance(percent: float) -> float:
    """Percentage points a share may stray from `percent` (about 5 standard deviations
    for 20,000 users, never less than 0.4)."""
    return min(1.5, max(0.4, percent * 0.1))


@check("flag-share")
def flag_share(ctx: CheckContext) -> Pass:
    """At each percentage, about that share of 20,000 users get the flag."""
    answers = _flag_answers(ctx)
    rows, wrong = [], []
    for percent, text in zip(STEPS, answers, strict=False):
        share = 100 * len(_on(text)) / len(USERS)
        exact = percent in (0, 100)
        ok = share == percent if exact else abs(share - percent) <= _tolerance(percent)
        want = f"exactly {percent}%" if exact else f"{percent} ± {_tolerance(percent):g}%"
        rows.append((f"{percent}%", f"{len(_on(text)):,}", f"{share:.2f}%", want))
        if not ok:
            wrong.append((percent, share))
    table = Evidence(
        f"users with {FLAG!r}, of {len(USERS):,}",
        "table",
        (("rollout", "users on", "share", "expected"), rows),
    )
    if wrong:
        percent, share = wrong[0]
        if percent == 0:
            why = (
                "At 0% the flag is a kill switch: when a release goes wrong, turning it to "
                "0 must take the new code path away from everyone. Look at how a bucket "
                "is compared with the percentage (< or <=)."
            )
        elif percent == 100:
            why = "At 100% the rollout is finished: every user must get the new path."
        else:
            why = (
                "A rollout's percentage is a promise about how many users are exposed: "
                "the blast radius if the new path is broken. Map each user to a bucket "
                "that is spread evenly (a good hash, then modulo a number of buckets) "
                "and turn on the buckets below the percentage."
            )
        raise Fail(
            f"At {percent}%, {share:.2f}% of {len(USERS):,} users got {FLAG!r}. {why}",
            table,
        )
    return Pass(
        f"At 0, 1, 10, 25, 50 and 100%, the share of {len(USERS):,} users was within "
        f"tolerance (0 and 100 exactly).",
        table,
    )


@check("flag-sticky")
def flag_sticky(ctx: CheckContext) -> Pass:
    """A user keeps the flag on every call, and as the percentage grows."""
    answers = _flag_answers(ctx)
    first, repeat = answers[STEPS.index(10)], answers[len(STEPS)]
    flipped = [i for i, (a, b) in enumerate(zip(first, repeat, strict=True)) if a != b]
    if flipped:
        user = USERS[flipped[0]]
        raise Fail(
            f"Asked twice in the same process at 10%, {len(flipped):,} of {len(USERS):,} "
            f"users got a different answer the second time ({user!r} among them). A user "
            f"who sees the new checkout on one page and the old one on the next reports a "
            f"bug, and your metrics mix both paths. Decide from the user and the flag "
            f"alone, never from a random draw."
        )
    rows, lost_first = [], None
    for low, high in itertools.pairwise(STEPS):
        before, after = _on(answers[STEPS.index(low)]), _on(answers[STEPS.index(high)])
        lost = sorted(before - after)
        rows.append((f"{low}% -> {high}%", f"{len(before):,}", f"{len(lost):,}"))
        if lost and lost_first is None:
            lost_first = (low, high, lost, before)
    table = Evidence(
        "users who had the flag, and lost it at the next step",
        "table",
        (("step", "had it", "lost it"), rows),
    )
    if lost_first:
        low, high, lost, before = lost_first
        raise Fail(
            f"Of the {len(before):,} users who had {FLAG!r} at {low}%, {len(lost):,} lost "
            f"it when the rollout grew to {high}% ({USERS[lost[0]]!r} among them). Growing "
            f"a rollout should only add users: the early users are the ones whose "
            f"experience you watched before widening it, and taking the feature away "
            f"from them and giving it to others is churn, not a rollout. Give each user a "
            f"bucket that does not depend on the percentage, and let the percentage only "
            f"move the line.",
            table,
        )
    return Pass(
        "Every user got the same answer on a second call, and no user lost the flag as "
        "it grew from 0 to 100%.",
        table,
    )


@check("flag-stable")
def flag_stable(ctx: CheckContext) -> Pass:
    """Every process gives a user the same answer."""
    answers = _flag_answers(ctx)
    again = _ask_flags(ctx, AGAIN, fresh=True)["answers"]
    rows, moved_first = [], None
    for (flag, percent), other in zip(AGAIN, again, strict=True):
        mine = answers[ASKS.index([flag, percent])]
        moved = [i for i, (a, b) in enumerate(zip(mine, other, strict=True)) if a != b]
        rows.append((f"{percent}%", f"{len(moved):,}"))
        if moved and moved_first is None:
            moved_first = (percent, moved)
    table = Evidence(
        f"users whose answer changed in a second process, of {len(USERS):,}",
        "table",
        (("rollout", "changed"), rows),
    )
    if moved_first:
        percent, moved = moved_first
        raise Fail(
            f"In a second process, {len(moved):,} of {len(USERS):,} users got a different "
            f"answer at {percent}% ({USERS[moved[0]]!r} among them). Your app runs in many "
            f"processes on many servers, and restarts: a user's requests land on all of "
            f"them, and each must agree. Something your answer depends on changes from "
            f"process to process: Python's built-in hash() of a str (salted at start-up), "
            f"or a salt or seed drawn when the module loads. Decide from the flag and the "
            f"user alone, with a hash whose value is fixed, from hashlib.",
            table,
        )
    return Pass(
        f"All {len(USERS):,} users got the same answers at 10% and 50% in a second process.",
        table,
    )


@check("flag-independent")
def flag_independent(ctx: CheckContext) -> Pass:
    """Different flags at the same percentage pick different users."""
    answers = _flag_answers(ctx)
    cohorts = {(FLAG, p): _on(answers[ASKS.index([FLAG, p])]) for p in (10, 50)}
    for other in OTHERS:
        for p in (10, 50):
            cohorts[(other, p)] = _on(answers[ASKS.index([other, p])])
    rows, bad = [], None
    flags = (FLAG, *OTHERS)
    for p in (10, 50):
        for i, a in enumerate(flags):
            for b in flags[i + 1 :]:
                one, two = cohorts[(a, p)], cohorts[(b, p)]
                both = len(one & two)
                chance = len(one) * len(two) / len(USERS)
                q = chance / len(USERS)
                slack = SIGMAS * math.sqrt(len(USERS) * q * (1 - q)) if 0 < q < 1 else 0
                rows.append((f"{p}%", f"{a} & {b}", f"{both:,}", f"about {chance:,.0f}"))
                if abs(both - chance) > slack and bad is None:
                    bad = (p, a, b, both, chance, len(one))
    table = Evidence(
        "users who got both flags",
        "table",
        (("rollout", "flags", "with both", "if independent"), rows),
    )
    if bad:
        p, a, b, both, chance, size = bad
        if both > chance:
            why = (
                "The same users get every experiment: they carry all the risk of every "
                "new path, and when two experiments run at once you cannot tell which "
                "one moved their metrics. Put the flag's name into what you hash, so "
                "each flag draws its own users."
            )
        else:
            why = (
                "The flags push users apart instead of choosing them independently "
                "(a window shifted per flag?), so experiments that run together never "
                "meet and each flag's users are not a fair sample. Hash the flag's name "
                "together with the user."
            )
        raise Fail(
            f"At {p}%, {both:,} of the {size:,} users with {a!r} also got {b!r}; chosen "
            f"independently, about {chance:,.0f} would. {why}",
            table,
        )
    return Pass(
        "Each pair of flags shared about as many users as independent draws would, at 10% "
        "and at 50%.",
        table,
    )


# ------------------------------------------------------------------ canary


def _window(requests: int, errors: int, p50: float, p99: float) -> dict[str, Any]:
    return {"requests": requests, "errors": errors, "p50_ms": p50, "p99_ms": p99}


NORMAL = _window(20_000, 40, 80.0, 180.0)
"""A baseline of 20,000 requests in the window: 0.2% errors, p99 180 ms."""

# The recorded runs are chosen so that every sound test agrees. A run that must not be
# rolled back gives the canary its errors at least 20% of the time by chance (Fisher's
# exact test, _chance below); a z-test at 1.645, Wilson intervals and a Bayesian
# comparison with flat priors at 95% all let it on; its p99 is at most 10 ms and 2.5%
# above the baseline's. A run that must be rolled back gives its errors less than once in
# a million, or more than doubles the p99. tests/test_lab_13.py holds them to this.
RUNS: list[dict[str, Any]] = [
    # canary-waits: too few canary requests to tell anything.
    {
        "name": "first-minute",
        "story": "a minute in, 25 canary requests, none failed",
        "baseline": _window(12_000, 24, 80.0, 180.0),
        "canary": _window(25, 0, 78.0, 175.0),
        "want": ("hold",),
        "check": "canary-waits",
    },
    {
        "name": "one-unlucky",
        "story": "25 canary requests, one failed; the baseline fails 1% too",
        "baseline": _window(10_000, 100, 85.0, 190.0),
        "canary": _window(25, 1, 84.0, 188.0),
        "want": ("hold",),
        "check": "canary-waits",
    },
    # canary-rollback: clearly worse than the baseline.
    {
        "name": "error-spike",
        "story": "3% of canary requests fail, 0.2% of the baseline's",
        "baseline": NORMAL,
        "canary": _window(2_000, 60, 81.0, 182.0),
        "want": ("rollback",),
        "check": "canary-rollback",
    },
    {
        "name": "quiet-baseline",
        "story": "0.8% of canary requests fail, eight times the baseline's 0.1%",
        "baseline": _window(50_000, 50, 80.0, 180.0),
        "canary": _window(3_000, 24, 80.0, 181.0),
        "want": ("rollback",),
        "check": "canary-rollback",
    },
    {
        "name": "zero-baseline",
        "story": "the baseline had no errors at all; 2% of canary requests fail",
        "baseline": _window(20_000, 0, 80.0, 180.0),
        "canary": _window(2_000, 40, 80.0, 181.0),
        "want": ("rollback",),
        "check": "canary-rollback",
    },
    {
        "name": "slow-tail",
        "story": "errors as usual, but the canary's p99 is 420 ms against 180 ms",
        "baseline": NORMAL,
        "canary": _window(2_000, 4, 82.0, 420.0),
        "want": ("rollback",),
        "check": "canary-rollback",
    },
    # canary-promote: as good as the baseline, noise included.
    {
        "name": "healthy",
        "story": "2,000 canary requests, errors and latency like the baseline's",
        "baseline": NORMAL,
        "canary": _window(2_000, 5, 81.0, 184.0),
        "want": ("promote",),
        "check": "canary-promote",
        "lesson": "ratio",
    },
    {
        "name": "noisy-baseline",
        "story": "a flaky payment provider fails 1.5% of requests on both versions",
        "baseline": _window(20_000, 300, 95.0, 400.0),
        "canary": _window(2_000, 32, 96.0, 410.0),
        "want": ("promote",),
        "check": "canary-promote",
        "lesson": "flaky",
    },
    {
        "name": "slow-day",
        "story": "a busy day: p99 is 900 ms on the baseline, 910 ms on the canary",
        "baseline": _window(20_000, 30, 300.0, 900.0),
        "canary": _window(2_000, 3, 303.0, 910.0),
        "want": ("promote",),
        "check": "canary-promote",
        "lesson": "slow",
    },
    {
        "name": "fixes-errors",
        "story": "the new version fixes the bug behind most errors: 0.1% against 1%",
        "baseline": _window(20_000, 200, 82.0, 180.0),
        "canary": _window(2_000, 2, 80.0, 170.0),
        "want": ("promote",),
        "check": "canary-promote",
        "lesson": "better",
    },
    {
        "name": "lone-error",
        "story": "at half the traffic, one of the canary's 20,000 requests failed; "
        "the baseline had none",
        "baseline": _window(20_000, 0, 80.0, 180.0),
        "canary": _window(20_000, 1, 80.0, 182.0),
        "want": ("promote", "hold"),
        "check": "canary-promote",
        "lesson": "ratio",
    },
    {
        "name": "early-errors",
        "story": "300 canary requests, 1 failed (0.33%); the baseline fails 0.2%",
        "baseline": NORMAL,
        "canary": _window(300, 1, 80.0, 184.0),
        "want": ("promote", "hold"),
        "check": "canary-promote",
        "lesson": "ratio",
    },
]

LESSONS = {
    "better": (
        "The canary is better than its baseline: fewer errors, a faster p99. Only a "
        "canary worse than the baseline is rolled back, so ask how far it is above the "
        "baseline (a one-sided test), not how far from it in either direction."
    ),
    "ratio": (
        "A ratio of rates ignores how few errors it rests on, and against a baseline "
        "with no errors any error at all looks infinitely worse. Ask whether the "
        "difference is larger than the noise (a significance test, or a margin that "
        "shrinks as requests grow); with only a handful of errors the normal "
        "approximation overstates the evidence, so add one error to each side or use an "
        "exact test."
    ),
    "flaky": (
        "Both versions fail at about the same rate (a shared dependency is flaky): the "
        "new version is not the cause, and rolling it back fixes nothing. Compare with "
        "the baseline, not with a fixed threshold."
    ),
    "slow": (
        "Both versions are slow today: latency is judged against the baseline measured "
        "over the same minutes, not against a fixed number."
    ),
}


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _chance(baseline: dict[str, Any], canary: dict[str, Any]) -> float:
    """How often the canary would draw at least its share of the errors if both versions
    were equally good: the one-sided Fisher exact test (exact with no baseline errors)."""
    n1, n2 = baseline["requests"], canary["requests"]
    errors, mine = baseline["errors"] + canary["errors"], canary["errors"]
    whole = _log_choose(n1 + n2, errors)
    return min(
        1.0,
        sum(
            math.exp(_log_choose(n2, x) + _log_choose(n1, errors - x) - whole)
            for x in range(mine, min(errors, n2) + 1)
            if errors - x <= n1
        ),
    )


def _often(p: float) -> str:
    if p < 1e-6:
        return "less than once in a million"
    if p < 0.01:
        return f"about once in {round(1 / p):,}"
    return f"{100 * p:.0f}% of the time"


def _errors_fact(r: dict[str, Any]) -> str:
    b, c = r["baseline"], r["canary"]
    rates = (
        f"{c['errors']} error{'' if c['errors'] == 1 else 's'} in {c['requests']:,} "
        f"canary requests "
        f"({100 * c['errors'] / c['requests']:.2f}%, against the baseline's "
        f"{100 * b['errors'] / b['requests']:.2f}%)"
    )
    if c["errors"] * b["requests"] <= b["errors"] * c["requests"]:
        return rates
    return (
        f"{rates}: if both versions were equally good, chance alone would give the "
        f"canary that many or more {_often(_chance(b, c))}"
    )


def _decide_all(ctx: CheckContext) -> list[str]:
    runs = [[r["baseline"], r["canary"]] for r in RUNS]
    run = ctx.run(HARNESS_FILE, "decide", CANARY, runs, files={HARNESS_FILE: HARNESS})
    if run.timed_out or run.limit:
        within = f"within {ctx.lab.time_limit:g} s" if run.timed_out else f"({run.limit} limit)"
        raise Fail(
            f"decide() over {len(RUNS)} recorded runs did not finish {within}: it is "
            f"arithmetic on a few numbers.",
            Evidence("its output", "text", run.output or "(none)"),
        )
    if not run.ok:
        raise Fail(
            f"Calling decide in canary.py failed: {_first_line(run.error)}.",
            Evidence("traceback", "text", run.traceback or run.error or "(none)"),
        )
    value = run.value
    if not isinstance(value, list) or len(value) != len(RUNS):
        raise Fail("The harness got no decisions back from decide().")
    return [str(v) for v in value]


def _decisions(ctx: CheckContext) -> list[str]:
    """decide() over every recorded run, in one learner process, once per `lab check`."""
    return list(ctx.once("decisions", lambda: _decide_all(ctx)))


def _normal(answer: str) -> str:
    return answer.strip().lower()


def _pair(r: dict[str, Any], field: str) -> str:
    return f"{r['baseline'][field]:,g}/{r['canary'][field]:,g}"


def _runs_table(runs: list[tuple[dict[str, Any], str]]) -> Evidence:
    rows = [
        (
            r["name"],
            _pair(r, "requests"),
            _pair(r, "errors"),
            _pair(r, "p99_ms"),
            "/".join(r["want"]),
            got[:20],
        )
        for r, got in runs
    ]
    return Evidence(
        "recorded canary runs (baseline / canary)",
        "table",
        (("run", "requests", "errors", "p99 ms", "expected", "said"), rows),
    )


def _judge_runs(ctx: CheckContext, check_id: str) -> tuple[list[tuple[dict[str, Any], str]], Any]:
    """This check's runs with decide()'s answers, and the first one judged wrong."""
    decisions = _decisions(ctx)
    mine = [(r, d) for r, d in zip(RUNS, decisions, strict=True) if r["check"] == check_id]
    for r, d in mine:
        if d.startswith(("raised ", "returned ")):
            zero = (
                " A baseline with no errors has an error rate of 0: never divide by it."
                if "ZeroDivisionError" in d and r["baseline"]["errors"] == 0
                else ""
            )
            raise Fail(
                f"On the run {r['name']!r} ({r['story']}), decide() {d}. It gets two "
                f"dicts with requests, errors, p50_ms and p99_ms, and returns 'promote', "
                f"'hold' or 'rollback'.{zero}",
                _runs_table(mine),
            )
        if _normal(d) not in ("promote", "hold", "rollback"):
            raise Fail(
                f"On the run {r['name']!r}, decide() returned {d[:60]!r}: the pipeline "
                f"understands 'promote', 'hold' and 'rollback'.",
                _runs_table(mine),
            )
    wrong = next(((r, d) for r, d in mine if _normal(d) not in r["want"]), None)
    return mine, wrong


@check("canary-waits")
def canary_waits(ctx: CheckContext) -> Pass:
    """Too few canary requests to judge: hold."""
    mine, wrong = _judge_runs(ctx, "canary-waits")
    if wrong:
        r, d = wrong
        c = r["canary"]
        raise Fail(
            f"On the run {r['name']!r} ({r['story']}), decide() said {_normal(d)!r}. With "
            f"{c['requests']} requests, one error more or less swings the canary's error "
            f"rate by {100 / c['requests']:.0f} points: that is chance, not evidence. "
            f"Below a minimum number of canary requests, hold (keep the canary's small "
            f"share and wait for more traffic); only judge once one error is a small part "
            f"of the rate you could detect.",
            _runs_table(mine),
        )
    return Pass(
        f"With only a few dozen canary requests, decide() held ({len(mine)} runs).",
        _runs_table(mine),
    )


@check("canary-rollback")
def canary_rollback(ctx: CheckContext) -> Pass:
    """A canary clearly worse than its baseline is rolled back."""
    mine, wrong = _judge_runs(ctx, "canary-rollback")
    if wrong:
        r, d = wrong
        b, c = r["baseline"], r["canary"]
        waited = (
            f" With {c['requests']:,} canary requests there is enough to judge: holding "
            f"leaves the bad version serving its share of users while you wait."
            if _normal(d) == "hold"
            else ""
        )
        if c["p99_ms"] > 2 * b["p99_ms"]:
            why = (
                f"Its error rate is normal, but its p99 latency is {c['p99_ms']:g} ms "
                f"against the baseline's {b['p99_ms']:g} ms: one request in a hundred now "
                f"waits more than twice as long, and on a page that makes many calls most "
                f"users meet one. Compare latency with the baseline's too."
            )
        else:
            why = (
                f"{_errors_fact(r)}. A fixed threshold (say 1%) misses a version that "
                f"multiplies a low error rate; judge the canary against its baseline, over "
                f"the same minutes, and make sure a baseline of 0 errors does not divide "
                f"by zero."
            )
        raise Fail(
            f"On the run {r['name']!r} ({r['story']}), decide() said {_normal(d)!r}; the "
            f"pipeline should roll this canary back.{waited} {why}",
            _runs_table(mine),
        )
    return Pass(
        f"decide() rolled back all {len(mine)} clearly worse canaries: an error spike, "
        f"errors eight times a low baseline, errors over a baseline of none, and a slow "
        f"p99.",
        _runs_table(mine),
    )


@check("canary-promote")
def canary_promote(ctx: CheckContext) -> Pass:
    """A canary as good as its baseline, noise included, goes on."""
    mine, wrong = _judge_runs(ctx, "canary-promote")
    if wrong:
        r, d = wrong
        b, c = r["baseline"], r["canary"]
        if r["want"] == ("promote",) and _normal(d) == "hold":
            why = (
                f"With {c['requests']:,} canary requests there is enough to judge, and it "
                f"is as good as the baseline: a canary that never moves on is a release "
                f"that never ships (the next, wider step is watched too). Is your minimum "
                f"sample, or the number of errors you wait for, far above a few hundred "
                f"requests' worth?"
            )
        else:
            slower = c["p99_ms"] - b["p99_ms"]
            noise = (
                "within the noise of a p99, which rests on the slowest 1% of requests"
                if slower > 0
                else "faster"
            )
            why = (
                f"{_errors_fact(r)}; its p99 is {c['p99_ms']:g} ms against "
                f"{b['p99_ms']:g} ms ({slower:+g} ms, {100 * slower / b['p99_ms']:+.1f}%: "
                f"{noise}). {LESSONS[r['lesson']]}"
            )
        raise Fail(
            f"On the run {r['name']!r} ({r['story']}), decide() said {_normal(d)!r}; "
            f"expected {' or '.join(r['want'])}. {why}",
            _runs_table(mine),
        )
    return Pass(
        f"decide() rolled back none of the {len(mine)} canaries as good as their baseline "
        f"or better, noise included, and promoted those with thousands of requests.",
        _runs_table(mine),
    )


# ------------------------------------------------------------------ the pipeline

BUDGET = 10
"""Minutes the gate's longest chain of jobs may take at worst (the sum of its timeouts)."""
GATES = ("lint", "build", "test", "scan")
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    # A job's stage: the first stage (in this order) with a word that starts a word of the
    # job's id or name ("unit-tests", "Trivy image scan", "dockerBuild"; not "latest").
    (
        "scan",
        (
            "scan", "secur", "audit", "vuln", "cve", "sast", "dast", "codeql", "trivy",
            "grype", "snyk", "bandit", "semgrep", "gitleaks", "osv", "dependency[-_ ]?review",
        ),
    ),
    ("test", ("test", "pytest", "unit", "integration", "e2e", "smoke", "coverage")),
    (
        "lint",
        (
            "lint", "eslint", "ruff", "flake8", "pylint", "mypy", "pyright", "type[-_ ]?check",
            "format", "fmt", "style", "black", "isort", "prettier", "pre[-_ ]?commit",
        ),
    ),
    ("build", ("build", "compile", "bundle")),
    ("deploy", ("deploy", "publish", "release", "ship", "promote", "push", "rollout")),
    # Weaker words, for a job with none of the above: "docker", "image" ("push-image" is a
    # deploy, "image-scan" a scan, "docker" alone a build).
    ("build", ("docker", "image", "container", "package", "wheel", "dist")),
)  # fmt: skip
NOT_A_STAGE = re.compile(r"(?<![a-z])(docs?|documentation|pages|mkdocs|sphinx)(?![a-z])")
"""A job that builds the docs is not the gate's build."""
AFTER = {"build": ("lint",), "test": ("build",), "scan": ("build",), "deploy": ("test", "scan")}
"""Each stage's jobs must wait (through `needs`) for a job of each of these stages; a
deploy job for every job of them."""
SHA = re.compile(r"[0-9a-f]{40}")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
VERSION = re.compile(r"\d+\.\d+")
SWALLOW = re.compile(
    r"\|\|\s*(?:true\b|:(?!\S)|exit\s+0\b|echo\b(?![^\n]*&&\s*exit\s+[1-9]))"
    r"|;\s*(?:true|:|exit\s+0)\s*$",
    re.MULTILINE,
)
"""`cmd || true`, `cmd || echo failed`, `cmd; exit 0`: the step's status is no longer cmd's."""
HARMLESS_STEP = re.compile(r"upload|download|cache|sarif|summary|comment", re.IGNORECASE)
"""Steps whose failure may be let through: reporting, not judging."""


def _workflow(ctx: CheckContext) -> dict[str, Any]:
    """The workflow, parsed, with its jobs checked to be a mapping of mappings."""
    text = ctx.read(WORKFLOW)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise Fail(
            f"{WORKFLOW} is not valid YAML: {_first_line(str(exc))}. GitHub would not run "
            f"it at all."
        ) from None
    jobs = data.get("jobs") if isinstance(data, dict) else None
    if (
        not isinstance(jobs, dict)
        or not jobs
        or not all(isinstance(j, dict) for j in jobs.values())
    ):
        raise Fail(f"{WORKFLOW} has no `jobs:` mapping of job ids to jobs: GitHub would refuse it.")
    return data


def _needs(job: dict[str, Any]) -> list[str]:
    needs = job.get("needs") or []
    return [str(n) for n in (needs if isinstance(needs, list) else [needs])]


def _stage(job_id: str, job: dict[str, Any]) -> str | None:
    text = f"{job_id} {job.get('name') or ''}"
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", text).lower()  # dockerBuild: 2 words
    if NOT_A_STAGE.search(words):
        return None
    for stage, stems in STAGES:
        if re.search(rf"(?<![a-z])({'|'.join(stems)})", words):
            return stage
    return None


def _graph(jobs: dict[str, Any]) -> dict[str, set[str]]:
    """Every job's ancestors through `needs`; Fail on an unknown job or a cycle."""
    for job_id, job in jobs.items():
        unknown = [n for n in _needs(job) if n not in jobs]
        if unknown:
            raise Fail(
                f"Job {job_id!r} needs {unknown[0]!r}, which is not a job of this "
                f"workflow (the jobs are {', '.join(map(repr, jobs))}): GitHub refuses it."
            )
    ancestors: dict[str, set[str]] = {}

    def visit(job_id: str, path: tuple[str, ...]) -> set[str]:
        if job_id in path:
            circle = (*path[path.index(job_id) :], job_id)
            raise Fail(
                f"The jobs need each other in a circle ({' -> '.join(circle)}): GitHub "
                f"refuses the workflow."
            )
        if job_id not in ancestors:
            found: set[str] = set()
            for n in _needs(jobs[job_id]):
                found |= {n} | visit(n, (*path, job_id))
            ancestors[job_id] = found
        return ancestors[job_id]

    for job_id in jobs:
        visit(job_id, ())
    return ancestors


def _jobs_table(jobs: dict[str, Any], stages: dict[str, str | None]) -> Evidence:
    rows = [
        (
            job_id,
            stages[job_id] or "(other)",
            ", ".join(_needs(job)) or "(nothing: starts at once)",
            str(job.get("timeout-minutes", "(none)")),
        )
        for job_id, job in jobs.items()
    ]
    return Evidence(
        f"jobs in {WORKFLOW}", "table", (("job", "stage", "needs", "timeout-minutes"), rows)
    )


def _true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _runs_after_failure(condition: str) -> bool:
    """Whether a job's `if:` lets it run when a job it needs has failed.

    Without a status function GitHub adds success(); always(), failure() and a bare
    !cancelled() drop it. A condition that then looks at its needs' results
    (`always() && needs.build.result == 'success'`) is given the benefit of the doubt.
    """
    text = re.sub(r"\s+", "", condition.replace("${{", "").replace("}}", ""))
    escapes = (
        "always()" in text
        or re.search(r"(?<!!)failure\(\)", text) is not None
        or ("!cancelled()" in text and "!failure()" not in text and "success()" not in text)
    )
    return escapes and re.search(r"needs\.|\.result", text) is None


def _triggers(data: dict[Any, Any]) -> list[str]:
    # YAML 1.1 reads a bare `on` key as the boolean True.
    on = data.get("on", data.get(True))
    if isinstance(on, str):
        return [on]
    if isinstance(on, list):
        return [str(t) for t in on]
    if isinstance(on, dict):
        return [str(t) for t in on]
    return []


@check("pipeline-gates")
def pipeline_gates(ctx: CheckContext) -> Pass:
    """Pull requests run lint, build, test and a security scan, in order; red blocks."""
    data = _workflow(ctx)
    jobs: dict[str, Any] = data["jobs"]
    triggers = _triggers(data)
    if "pull_request" not in triggers:
        extra = ""
        if "pull_request_target" in triggers:
            extra = (
                " pull_request_target runs in the base branch's context with its "
                "secrets, which makes running a pull request's code there dangerous; "
                "pull_request is the trigger for checking it."
            )
        raise Fail(
            f"The workflow runs on {', '.join(triggers) or 'nothing'}, not on pull_request: "
            f"the gate must run before a change is merged, so that branch protection can "
            f"block a red pull request.{extra}",
            _jobs_table(jobs, {j: _stage(j, job) for j, job in jobs.items()}),
        )
    stages = {job_id: _stage(job_id, job) for job_id, job in jobs.items()}
    table = _jobs_table(jobs, stages)
    missing = [s for s in GATES if s not in stages.values()]
    if missing:
        raise Fail(
            f"No job for the {', '.join(missing)} stage(s): the checker names a job's "
            f"stage by words in its id or name (lint, build, test, scan or security, or a "
            f"tool such as ruff, docker, pytest, trivy or codeql). A "
            f"job per stage shows as its own status check on the pull request, and a red "
            f"lint stops the rest in seconds.",
            table,
        )
    ancestors = _graph(jobs)
    for job_id, stage in stages.items():
        for before in AFTER.get(stage or "", ()):
            earlier = [j for j, s in stages.items() if s == before]
            waits = [j for j in earlier if j in ancestors[job_id]]
            missed = [j for j in earlier if j not in waits]
            if not waits or (stage == "deploy" and missed):
                other = missed[0]
                raise Fail(
                    f"Job {job_id!r} ({stage}) does not wait for {other!r} ({before}): "
                    f"nothing in its `needs`, directly or through the jobs it needs, "
                    f"leads to {other!r}, so GitHub starts both at once and "
                    f"{job_id!r} runs even when {other!r} fails. Chain the stages "
                    f"with `needs:` (lint, then build, then test and the scan"
                    f"{', then deploy' if stage == 'deploy' else ''}).",
                    table,
                )
    for job_id, job in jobs.items():
        if stages[job_id] is None:
            continue
        if _true(job.get("continue-on-error")):
            raise Fail(
                f"Job {job_id!r} has continue-on-error: true, so when it fails the run "
                f"still goes green and the jobs after it go on: a gate that cannot close.",
                table,
            )
        condition = str(job.get("if", ""))
        if _needs(job) and _runs_after_failure(condition):
            raise Fail(
                f"Job {job_id!r} runs `if: {condition[:80]}`: it goes on even when a job "
                f"it needs has failed, which undoes the `needs` that should stop it.",
                table,
            )
        for step in job.get("steps") or []:
            if not isinstance(step, dict):
                continue
            run = str(step.get("run") or "")
            what = run or str(step.get("uses") or step.get("name") or "")
            if _true(step.get("continue-on-error")) and not (
                not run and HARMLESS_STEP.search(what)
            ):
                raise Fail(
                    f"A step of job {job_id!r} has continue-on-error: true "
                    f"(`{what[:60]}`): when it fails, the job still passes and the gate "
                    f"stays open.",
                    table,
                )
            if stages[job_id] in GATES and SWALLOW.search(run):
                raise Fail(
                    f"A step of job {job_id!r} swallows its exit status (`{run[:60]}`): "
                    f"a failing command then reports success and the gate stays open.",
                    table,
                )
    return Pass(
        "On pull requests, build waits for lint, tests and the scan wait for the build, "
        "and nothing lets a red job through.",
        table,
    )


def _runner_labels(job: dict[str, Any]) -> list[str]:
    """The runner labels a job may run on, a matrix's values included."""
    runs_on = job.get("runs-on")
    if isinstance(runs_on, dict):  # {group: ..., labels: ...}
        runs_on = runs_on.get("labels")
    labels = [runs_on] if isinstance(runs_on, str) else runs_on or []
    if not isinstance(labels, list):
        return []
    strategy = job.get("strategy")
    matrix = strategy.get("matrix") if isinstance(strategy, dict) else None
    out = []
    for label in labels:
        if not isinstance(label, str):
            continue
        key = re.fullmatch(r"\$\{\{\s*matrix\.([\w-]+)\s*\}\}", label.strip())
        values = matrix.get(key[1]) if key and isinstance(matrix, dict) else None
        out += [str(v) for v in values] if isinstance(values, list) else [label]
    return out


def _image_problem(image: str) -> str | None:
    """Why a container image reference is not pinned, or None."""
    image = image.strip()
    if "${{" in image or DIGEST.search(image):
        return None
    name = image.rsplit("/", 1)[-1]
    tag = name.split(":", 1)[1] if ":" in name else ""
    if not tag:
        return "has no tag, which means latest"
    if tag == "latest":
        return "is tagged latest"
    if not VERSION.search(tag):
        return f"is tagged {tag!r}, which moves to each new release"
    return None


@check("pipeline-pinned")
def pipeline_pinned(ctx: CheckContext) -> Pass:
    """Actions are pinned to commit SHAs, images to digests or exact versions."""
    jobs: dict[str, Any] = _workflow(ctx)["jobs"]
    actions, images, runners = [], [], []
    for job_id, job in jobs.items():
        if isinstance(job.get("uses"), str):  # a reusable workflow
            actions.append((job_id, job["uses"]))
        for step in job.get("steps") or []:
            if isinstance(step, dict) and isinstance(step.get("uses"), str):
                actions.append((job_id, step["uses"]))
        container = job.get("container")
        if isinstance(container, dict):
            container = container.get("image")
        if isinstance(container, str):
            images.append((job_id, container))
        for service in (job.get("services") or {}).values():
            if isinstance(service, dict) and isinstance(service.get("image"), str):
                images.append((job_id, service["image"]))
        runners += [(job_id, label) for label in _runner_labels(job)]
    rows, moving = [], []
    for job_id, uses in actions:
        if uses.startswith("./"):
            continue
        if uses.startswith("docker://"):
            images.append((job_id, uses.removeprefix("docker://")))
            continue
        ref = uses.rsplit("@", 1)[1] if "@" in uses else ""
        pinned = bool(SHA.fullmatch(ref))
        rows.append((job_id, uses, "pinned" if pinned else "MOVES"))
        if not pinned:
            moving.append((job_id, uses, ref))
    table = Evidence("actions", "table", (("job", "uses", ""), rows))
    if moving:
        job_id, uses, ref = moving[0]
        short = (
            " (a short SHA is not enough: use all 40 characters)"
            if re.fullmatch(r"[0-9a-f]{7,39}", ref)
            else ""
        )
        more = f" ({len(moving) - 1} more in the table below)" if len(moving) > 1 else ""
        raise Fail(
            f"Job {job_id!r} uses {uses}{short}{more}. A tag or branch can be moved to "
            f"other code at any time, by the action's owner or by whoever takes over their "
            f"account, and that code runs with your workflow's token and secrets (in "
            f"March 2025, tj-actions/changed-files had its tags moved to code that "
            f"printed secrets into build logs). Pin every action to the full 40-hex "
            f"commit SHA, with the version in a comment: `uses: owner/repo@<sha> # v4.2.2`.",
            table,
        )
    for job_id, image in images:
        problem = _image_problem(image)
        if problem:
            raise Fail(
                f"Job {job_id!r} runs the image {image!r}, which {problem}: the same "
                f"workflow then runs different software from one week to the next, and "
                f"a red build cannot be reproduced. Pin the image by digest "
                f"(name@sha256:...) or at least to an exact version such as 15.10."
            )
    for job_id, label in runners:
        if "latest" in label:
            raise Fail(
                f"Job {job_id!r} runs on {label!r}, a label GitHub moves to each new "
                f"runner image (ubuntu-latest went from 22.04 to 24.04 around the turn "
                f"of 2025), changing the operating system and tools under your build "
                f"without a commit. Name the version, such as ubuntu-24.04."
            )
    return Pass(
        f"{len(rows)} action reference(s) pinned to commit SHAs, {len(images)} image(s) "
        f"pinned, runners named by version.",
        table,
    )


@check("pipeline-budget")
def pipeline_budget(ctx: CheckContext) -> Pass:
    """Every job has a timeout, and the gate's longest chain fits in 10 minutes."""
    jobs: dict[str, Any] = _workflow(ctx)["jobs"]
    stages = {job_id: _stage(job_id, job) for job_id, job in jobs.items()}
    table = _jobs_table(jobs, stages)
    minutes: dict[str, float] = {}
    for job_id, job in jobs.items():
        if isinstance(job.get("uses"), str):
            minutes[job_id] = 0.0  # a reusable workflow's jobs carry their own timeouts
            continue
        value = job.get("timeout-minutes")
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            said = "none" if value is None else repr(value)
            raise Fail(
                f"Job {job_id!r} has timeout-minutes: {said}. Without one, GitHub lets a "
                f"job run for 360 minutes: a test that hangs holds the pull request (and "
                f"a runner) for six hours before anyone hears of it. Give every job a "
                f"timeout-minutes a little above its usual time.",
                table,
            )
        minutes[job_id] = float(value)
    ancestors = _graph(jobs)
    gate = {j for j, s in stages.items() if s in GATES}
    gate |= {a for j in list(gate) for a in ancestors[j]}  # what the gate's jobs wait for
    longest: dict[str, tuple[float, list[str]]] = {}

    def chain(job_id: str) -> tuple[float, list[str]]:
        if job_id not in longest:  # _graph has checked that there is no cycle
            before = [chain(n) for n in _needs(jobs[job_id]) if n in gate]
            best = max(before, default=(0.0, []))
            longest[job_id] = (best[0] + minutes[job_id], [*best[1], job_id])
        return longest[job_id]

    worst, path = max((chain(j) for j in gate), default=(0.0, []))
    route = " -> ".join(f"{j} ({minutes[j]:g})" for j in path)
    if worst > BUDGET:
        raise Fail(
            f"The gate's longest chain of jobs, {route}, may take {worst:g} minutes before "
            f"it goes red or green, over a budget of {BUDGET}. Past about ten minutes "
            f"people stop waiting for the pipeline and pile changes into bigger pull "
            f"requests. Tighten the timeouts to a little above each job's usual time, "
            f"and run what does not depend on each other side by side.",
            table,
        )
    return Pass(
        f"Every job has a timeout; the gate's longest chain, {route}, is at most "
        f"{worst:g} minutes ({BUDGET} allowed).",
        table,
    )
