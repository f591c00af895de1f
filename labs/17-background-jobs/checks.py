"""Checks for the background-jobs lab: the effects table and the queues, never the clock.

The learner's worker runs in a child process through harness.py, whose handler plays
the payment partner (it fails, hangs or kills the process on cue). Every verdict comes
from PostgreSQL (payouts rows and balances per job id), from RabbitMQ (what waits in
jobs, jobs.retry and jobs.dead) and from the AMQP methods the proxy counted. Real
delays are tiny: the checks set JOB_BASE_DELAY to 0.02 s, and judge backoff() itself by
sampling it.
"""

from __future__ import annotations

import json
import math
import secrets
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from sdtutor.lab.checks import CheckContext, Evidence, Fail, Pass, check

HARNESS = Path(__file__).with_name("harness.py")
HARNESS_FILE = "sdtutor_jobs_harness.py"  # its name in the sandbox, beside worker.py
WORKER = "worker.py"
JOBS, RETRY, DEAD = "jobs", "jobs.retry", "jobs.dead"
MAX_ATTEMPTS = 3
FAST = {"JOB_BASE_DELAY": "0.02", "JOB_MAX_DELAY": "0.2", "JOB_TIMEOUT": "5"}
HURRIED = {**FAST, "JOB_TIMEOUT": "1"}  # the timeout check's: a hung call ends the attempt
SLOW = {"JOB_BASE_DELAY": "3600", "JOB_MAX_DELAY": "3600", "JOB_TIMEOUT": "5"}
SAMPLED = {"JOB_BASE_DELAY": "1", "JOB_MAX_DELAY": "60", "JOB_TIMEOUT": "5"}


# ------------------------------------------------------------------ the broker


def _channel(ctx: CheckContext) -> Any:
    return ctx.amqp().channel()


def _each(ctx: CheckContext, action: str, *names: str) -> None:
    """queue_delete / queue_purge each name, ignoring missing ones."""
    import pika.exceptions

    for name in names:
        channel = _channel(ctx)
        try:
            getattr(channel, action)(ctx.amqp_name(name))
            channel.close()
        except pika.exceptions.ChannelClosedByBroker:
            pass  # not there


def _ready(ctx: CheckContext, name: str) -> int:
    facts = ctx.queue(name)
    return facts.messages if facts.exists else 0


def _consumers(ctx: CheckContext, name: str) -> int:
    facts = ctx.queue(name)
    return facts.consumers if facts.exists else 0


def _where(ctx: CheckContext) -> dict[str, int]:
    return {name: _ready(ctx, name) for name in (JOBS, RETRY, DEAD)}


def _settle(ctx: CheckContext, expect: int | None = None, wait: float = 3.0) -> dict[str, int]:
    """Wait until a finished or dead worker's unacked jobs are back in their queues.

    Done when the queues hold `expect` messages in all, or their counts stop changing for
    a quarter of a second with no consumer left (AMQP shows ready messages, not unacked ones).
    """
    deadline = time.monotonic() + wait
    last: dict[str, int] = {}
    since = time.monotonic()
    while True:
        now = _where(ctx)
        idle = _consumers(ctx, JOBS) == 0
        if idle and expect is not None and sum(now.values()) >= expect:
            return now
        if now != last:
            last, since = now, time.monotonic()
        elif idle and time.monotonic() - since >= 0.25:
            return now
        if time.monotonic() > deadline:
            return now
        time.sleep(0.05)


def _back(ctx: CheckContext, wait: float = 3.0) -> dict[str, int]:
    """Wait until a retried job is back in jobs (or dead, or nowhere once things settle)."""
    deadline = time.monotonic() + wait
    while True:
        now = _settle(ctx, 1)
        if now[JOBS] or now[DEAD] or not now[RETRY] or time.monotonic() > deadline:
            return now
        time.sleep(0.02)


def _drain(ctx: CheckContext, name: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Take every message from a queue: (job, headers) pairs."""
    import pika.exceptions

    out: list[tuple[dict[str, Any], dict[str, Any]]] = []
    channel = _channel(ctx)
    try:
        while len(out) < 100:
            method, props, body = channel.basic_get(ctx.amqp_name(name), auto_ack=True)
            if method is None:
                break
            try:
                job = json.loads(body)
            except ValueError:
                job = {"body": body[:60].decode(errors="replace")}
            out.append((job if isinstance(job, dict) else {"body": job}, dict(props.headers or {})))
        channel.close()
    except pika.exceptions.ChannelClosedByBroker:
        pass
    return out


def _put(ctx: CheckContext, *jobs: dict[str, Any]) -> None:
    """Publish jobs to the work queue, persistent and confirmed, as the web app does."""
    import pika

    channel = _channel(ctx)
    channel.confirm_delivery()
    for job in jobs:
        channel.basic_publish(
            "",
            ctx.amqp_name(JOBS),
            json.dumps(job).encode(),
            pika.BasicProperties(delivery_mode=2, content_type="application/json"),
        )
    channel.close()


# ------------------------------------------------------------------ running the learner

_DECLARED: dict[int, CheckContext] = {}


def _why(run: Any) -> str:
    if run.timed_out:
        return "did not finish in time (is it waiting for something, or looping?)"
    error = str(run.error or "").strip()
    text = f"raised {error}" if error else "failed"
    if "PRECONDITION_FAILED" in error:
        text += (
            ". RabbitMQ refuses to declare an existing queue again with other arguments: "
            "declare each queue once, in declare_topology"
        )
    elif "ACCESS_REFUSED" in error:
        text += ". Every name must start with AMQP_NAME_PREFIX (see the top of worker.py)"
    elif "NOT_FOUND" in error:
        text += ". A queue your code uses does not exist: check the name and the prefix"
    elif "no unique or exclusion constraint" in error:
        text += (
            ". ON CONFLICT needs a unique constraint on those columns: add it in schema.sql "
            "and apply the file"
        )
    return text


def _trace(run: Any) -> Evidence:
    return Evidence("what your code printed", "text", run.traceback or run.output or run.error)


def _fresh(ctx: CheckContext) -> None:
    """Empty the lab's queues; on the first check, delete them and call declare_topology."""
    if _DECLARED.get(id(ctx)) is ctx:
        _each(ctx, "queue_purge", JOBS, RETRY, DEAD)
        return
    ctx.read(WORKER)  # a missing file fails here, with what to do
    _each(ctx, "queue_delete", JOBS, RETRY, DEAD)
    run = ctx.run(
        HARNESS_FILE,
        "topology",
        WORKER,
        clients=("rabbitmq",),
        files={HARNESS_FILE: HARNESS},
        timeout=10,
    )
    if not run.ok:
        raise Fail(
            f"declare_topology(channel) {_why(run)}. The checks start by calling it, so fix "
            f"this first.",
            _trace(run),
        )
    if not ctx.queue(JOBS).exists:
        raise Fail(
            f"After declare_topology ran there is no queue {JOBS} "
            f"({ctx.amqp_name(JOBS)} with the prefix): declare it there, durable."
        )
    _DECLARED.clear()
    _DECLARED[id(ctx)] = ctx


def _work(
    ctx: CheckContext,
    max_jobs: int,
    settings: dict[str, str] = FAST,
    behaviour: dict[str, list[Any]] | None = None,
    crash: str = "",
    timeout: float = 8,
) -> Any:
    """Run the learner's work(channel, db, handle, max_jobs) once, in a fresh process."""
    return ctx.run(
        HARNESS_FILE,
        "work",
        WORKER,
        settings,
        behaviour or {},
        crash,
        max_jobs,
        clients=("rabbitmq", "postgres"),
        files={HARNESS_FILE: HARNESS},
        timeout=timeout,
    )


def _deliveries(run: Any) -> int:
    server = getattr(run, "server", {}) or {}
    stats = server.get("rabbitmq") if isinstance(server, dict) else None
    methods = list(getattr(stats, "server_methods", []) or [])
    return sum(1 for m in methods if m in ("basic.deliver", "basic.get-ok"))


def _methods(run: Any) -> list[str]:
    server = getattr(run, "server", {}) or {}
    stats = server.get("rabbitmq") if isinstance(server, dict) else None
    return list(getattr(stats, "methods", []) or [])


def _died(run: Any) -> bool:
    return not run.ok and not run.timed_out and not run.traceback


# ------------------------------------------------------------------ the effects table


def _job(tag: str, account: int, cents: int) -> dict[str, Any]:
    """A payout job with an id of its own (a re-run never finds an old one done)."""
    return {"job_id": f"{tag}-{secrets.token_hex(3)}", "account": account, "amount_cents": cents}


def _balance(ctx: CheckContext, account: int) -> int:
    return int(ctx.value("SELECT balance_cents FROM accounts WHERE id = %s", (account,)))


def _payouts(ctx: CheckContext, job: dict[str, Any]) -> int:
    return int(ctx.value("SELECT count(*) FROM payouts WHERE job_id = %s", (job["job_id"],)))


def _calls(ctx: CheckContext, job: dict[str, Any]) -> int:
    return int(ctx.value("SELECT count(*) FROM partner_calls WHERE job_id = %s", (job["job_id"],)))


class Ledger:
    """Balances before a check, to judge each job's credit by the difference."""

    def __init__(self, ctx: CheckContext, *jobs: dict[str, Any]) -> None:
        self.ctx, self.jobs = ctx, jobs
        self.before = {j["account"]: _balance(ctx, j["account"]) for j in jobs}

    def credited(self, job: dict[str, Any]) -> int:
        """How many times the job's amount was added to its account."""
        delta = _balance(self.ctx, job["account"]) - self.before[job["account"]]
        return delta // job["amount_cents"] if delta % job["amount_cents"] == 0 else -1

    def table(self, **extra: Any) -> Evidence:
        rows = [
            (
                j["job_id"],
                _payouts(self.ctx, j),
                self.credited(j),
                _calls(self.ctx, j),
            )
            for j in self.jobs
        ]
        where = _where(self.ctx)
        rows += [(f"waiting in {name}", "", "", n) for name, n in where.items()]
        rows += [(k.replace("_", " "), "", "", v) for k, v in extra.items()]
        return Evidence(
            "the effects table and the queues",
            "table",
            (("job", "payouts rows", "times credited", "partner calls / count"), rows),
        )


def _once(ledger: Ledger, job: dict[str, Any], story: str) -> None:
    """Fail unless the job left exactly one payout and one credit."""
    rows, credits = _payouts(ledger.ctx, job), ledger.credited(job)
    table = ledger.table()
    if rows > 1 or credits > 1:
        raise Fail(
            f"{story}, and job {job['job_id']} left {rows} rows in payouts and credited "
            f"account {job['account']} {credits} times: the effect happened more than once. "
            f"Delivery is at least once, so a job must be recorded under its job_id, with a "
            f"unique key that makes a second insert a no-op, in the same transaction as the "
            f"credit.",
            table,
        )
    if rows == 0 or credits == 0:
        waiting = sum(_where(ledger.ctx).values())
        why = (
            f" The job is still in the queues ({waiting} waiting), so the worker counted it "
            f"as failed: if handle() did not raise, your SQL did (ON CONFLICT (job_id) needs "
            f"a unique constraint on job_id: is schema.sql applied?). Run python worker.py "
            f"by hand to see the error."
            if waiting
            else ""
        )
        raise Fail(
            f"{story}, and job {job['job_id']} was never paid: {rows} rows in payouts, "
            f"credited {credits} times. Record a payout row and credit the balance for every "
            f"job that handle() finished.{why}",
            table,
        )
    if credits < 0:
        raise Fail(
            f"{story}, and account {job['account']}'s balance moved by an amount that is not "
            f"a multiple of the job's {job['amount_cents']} cents. Credit amount_cents once.",
            table,
        )


def _finished(run: Any, what: str, table: Evidence | None = None) -> None:
    if run.ok:
        return
    extra = [table] if table else []
    raise Fail(f"work() {_why(run)} ({what}).", *extra, _trace(run))


# ------------------------------------------------------------------ the checks


@check("redelivery")
def redelivery(ctx: CheckContext) -> Pass:
    """The same job delivered three times (as a redelivery would) pays once."""
    _fresh(ctx)
    job = _job("redeliver", 1, 700)
    ledger = Ledger(ctx, job)
    _put(ctx, job, job, job)
    run = _work(ctx, 3)
    where = _settle(ctx)
    _finished(run, "three copies of one job were waiting", ledger.table())
    _once(ledger, job, "The same job was delivered three times")
    if where[JOBS]:
        raise Fail(
            f"Job {job['job_id']} was paid once, but {where[JOBS]} of its copies were back in "
            f"{JOBS} afterwards, unacknowledged: they will be delivered again, forever. A "
            f"copy of a job already done is done: acknowledge it.",
            ledger.table(),
        )
    if where[DEAD] or where[RETRY]:
        raise Fail(
            f"Job {job['job_id']} was paid once, but its other copies went to "
            f"{DEAD if where[DEAD] else RETRY}: a duplicate is not a failure. When the job "
            f"was done before, acknowledge the copy and move on.",
            ledger.table(),
        )
    return Pass(
        f"Three deliveries of job {job['job_id']}: one row in payouts, one credit, and every "
        f"copy acknowledged.",
        ledger.table(),
    )


@check("crash-after-effect")
def crash_after_effect(ctx: CheckContext) -> Pass:
    """A worker killed after recording a payout, before its ack: the job pays once."""
    _fresh(ctx)
    job = _job("ackcrash", 2, 1200)
    ledger = Ledger(ctx, job)
    _put(ctx, job)
    first = _work(ctx, 1, crash="ack")
    if not _died(first):
        _finished(first, "it was meant to die when it acknowledged its job", ledger.table())
        where = _settle(ctx)
        if not where[JOBS] and "basic.ack" not in _methods(first):
            raise Fail(
                f"The worker handled job {job['job_id']} and never sent basic.ack: it "
                f"consumes with auto_ack=True, so the broker forgot the job before any work "
                f"was done (the `crash-in-job` check shows what that costs). Acknowledge "
                f"each job yourself, after its effect is committed; this check then kills "
                f"the worker just before that ack, and sees whether the job pays twice.",
                ledger.table(),
            )
    _settle(ctx, 1)
    recorded = _payouts(ctx, job)
    second = _work(ctx, 1)
    where = _settle(ctx)
    _finished(second, "the job came back after the first worker died", ledger.table())
    _once(
        ledger,
        job,
        f"The worker died just before acknowledging job {job['job_id']} (with "
        f"{recorded} payout row already recorded), the job was delivered again to a new "
        f"worker",
    )
    if where[JOBS]:
        raise Fail(
            f"Job {job['job_id']} was paid once, but it was back in {JOBS} after the second "
            f"worker finished: acknowledge a job that turns out to be done already.",
            ledger.table(),
        )
    return Pass(
        "The worker died between the effect and the ack; the job came back, and the second "
        "worker found it done: one payout, one credit.",
        ledger.table(),
    )


@check("crash-in-job")
def crash_in_job(ctx: CheckContext) -> Pass:
    """A worker killed while handle() runs: the job is not lost, and is paid once later."""
    _fresh(ctx)
    job = _job("jobcrash", 3, 900)
    ledger = Ledger(ctx, job)
    _put(ctx, job)
    first = _work(ctx, 1, crash="handle")
    if not _died(first):
        _finished(first, "it was meant to die inside handle()", ledger.table())
        raise Fail(
            f"work() returned without calling handle() for job {job['job_id']}: take jobs "
            f"from {JOBS} and call handle(job) for each.",
            ledger.table(),
        )
    where = _settle(ctx, 1)
    if sum(where.values()) == 0 and _payouts(ctx, job) == 0:
        acked = "basic.ack" in _methods(first)
        how = (
            "It had already been acknowledged before handle() finished, so the broker "
            "deleted it. A job is done when its effect is committed; only then ack it."
            if acked
            else "The worker never sent basic.ack, yet the broker had deleted it: it was "
            "consuming with auto_ack=True, where a message counts as done the moment it is "
            "sent. Acknowledge each job yourself, after its effect is committed."
        )
        raise Fail(
            f"The worker died while the partner call for job {job['job_id']} was running, "
            f"and the job was lost: it is in no queue and was never paid. {how}",
            ledger.table(),
        )
    second = _work(ctx, 1)
    _settle(ctx)
    _finished(second, "a new worker was started after the first one died", ledger.table())
    _once(ledger, job, "The worker died inside handle(), a new worker got the job again")
    return Pass(
        f"The worker died in the middle of job {job['job_id']}; the broker gave it to the "
        f"next worker, which paid it once.",
        ledger.table(),
    )


@check("two-workers")
def two_workers(ctx: CheckContext) -> Pass:
    """Two workers handed copies of the same job at the same moment pay it once."""
    _fresh(ctx)
    job = _job("twice", 4, 1500)
    ledger = Ledger(ctx, job)
    result: dict[str, Any] = {}

    def start() -> None:
        try:
            result["run"] = ctx.workers(
                HARNESS_FILE,
                "work",
                2,
                clients=("rabbitmq", "postgres"),
                args_for=lambda i: [WORKER, FAST, {job["job_id"]: ["meet", 2]}, "", 1],
                files={HARNESS_FILE: HARNESS},
                timeout=10,
            )
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=start, daemon=True)
    thread.start()
    deadline = time.monotonic() + 6  # basic_get pollers never show as consumers
    while time.monotonic() < deadline and _consumers(ctx, JOBS) < 2 and thread.is_alive():
        time.sleep(0.05)
    _put(ctx, job, job)  # with two consumers, the broker hands one copy to each
    thread.join(15)
    if "error" in result:
        raise result["error"]
    runs = result["run"].runs
    _settle(ctx)
    broken = [r for r in runs if not r.ok]
    if broken:
        _finished(broken[0], "two workers, one copy of the job each", ledger.table())
    workers = int(
        ctx.value(
            "SELECT count(DISTINCT worker) FROM partner_calls WHERE job_id = %s",
            (job["job_id"],),
        )
    )
    race = (
        "both workers called the partner for it at the same time"
        if workers > 1
        else "the two workers got one copy each"
    )
    _once(ledger, job, f"Two copies of one job were handed to two workers at once, {race}")
    return Pass(
        f"Two workers got copies of job {job['job_id']} at once: one row in payouts, one "
        f"credit ({workers} of them reached the partner call).",
        ledger.table(),
    )


def _spread(values: list[float]) -> float:
    mean = statistics.fmean(values)
    return (max(values) - min(values)) / mean if mean > 0 else 0.0


@check("backoff")
def backoff(ctx: CheckContext) -> Pass:
    """backoff(attempt) grows exponentially up to MAX_DELAY, with jitter: judged on samples."""
    ctx.read(WORKER)
    attempts, n = [1, 2, 3, 4, 5, 6, 12, 20], 200
    run = ctx.run(
        HARNESS_FILE,
        "samples",
        WORKER,
        SAMPLED,
        attempts,
        n,
        files={HARNESS_FILE: HARNESS},
        timeout=10,
    )
    if not run.ok:
        raise Fail(f"backoff(attempt) {_why(run)}.", _trace(run))
    try:
        got = {a: [float(v) for v in vs] for a, vs in zip(attempts, run.value, strict=True)}
    except (TypeError, ValueError):
        raise Fail("backoff(attempt) must return a number of seconds (a float).") from None
    rows = [
        (a, f"{min(vs):.2f}", f"{statistics.fmean(vs):.2f}", f"{max(vs):.2f}")
        for a, vs in got.items()
    ]
    table = Evidence(
        f"backoff(attempt), {n} calls each, with BASE_DELAY 1 s and MAX_DELAY 60 s",
        "table",
        (("attempt", "min", "mean", "max"), rows),
    )
    every = [v for vs in got.values() for v in vs]
    if any(not math.isfinite(v) or v < 0 for v in every):
        raise Fail("backoff() returned a negative or infinite delay.", table)
    first = statistics.fmean(got[1])
    if first <= 0:
        raise Fail(
            "backoff(1) is 0: a failed job is retried at once, in a tight loop that hammers a "
            "partner that is already down. Wait BASE_DELAY (or up to it) before the first "
            "retry.",
            table,
        )
    top = max(max(got[12]), max(got[20]))
    if top > 60 * 1.001:
        raise Fail(
            f"backoff() returned {top:.0f} s for a late attempt, above MAX_DELAY (60 s here): "
            f"without a cap, exponential backoff waits hours by the 14th attempt and days by "
            f"the 20th. Take the minimum of the exponential and MAX_DELAY.",
            table,
        )
    growth = statistics.fmean(got[6]) / first
    if growth < 10:
        raise Fail(
            f"From attempt 1 to attempt 6 the mean delay grew {growth:.1f} times; doubling "
            f"each attempt gives 32. A delay that grows linearly (or not at all) keeps "
            f"retrying a dependency that is down at a steady rate. Multiply by 2 per attempt.",
            table,
        )
    flat = [a for a in (1, 3, 5) if _spread(got[a]) < 0.2]
    if flat:
        a = flat[0]
        raise Fail(
            f"Attempt {a} gave {len(set(got[a]))} distinct values in {n} calls, all within "
            f"{_spread(got[a]) * 100:.0f}% of each other: jobs that failed together (a "
            f"partner outage) retry together, in waves, just as it recovers. Add jitter: a "
            f"random part, such as random.uniform(0, ceiling).",
            table,
        )
    if statistics.fmean(got[20]) < 0.2 * 60:
        raise Fail(
            f"Late attempts wait {statistics.fmean(got[20]):.1f} s on average, far below "
            f"MAX_DELAY (60 s here): does the delay stop growing too early?",
            table,
        )
    return Pass(
        f"The mean delay grows {growth:.0f} times from attempt 1 to 6, never passes the 60 s "
        f"cap, and spreads out within each attempt (jitter).",
        table,
    )


@check("retries")
def retries(ctx: CheckContext) -> Pass:
    """A failing job waits in jobs.retry; after 4 attempts, across restarts, it is in jobs.dead."""
    _fresh(ctx)
    parked = _job("parked", 5, 400)
    ledger = Ledger(ctx, parked)
    _put(ctx, parked)
    run = _work(ctx, 1, SLOW, {parked["job_id"]: ["fail", 99]})
    where = _settle(ctx, 1)
    _finished(run, "its one job failed", ledger.table())
    if _payouts(ctx, parked) or ledger.credited(parked):
        raise Fail(
            f"The partner call for job {parked['job_id']} failed, and yet the job left a "
            f"payout or a credit. Record the effect only once handle() succeeded, in the "
            f"transaction that fails with it.",
            ledger.table(),
        )
    if where[DEAD]:
        raise Fail(
            f"Job {parked['job_id']} failed once and went straight to {DEAD}. A first "
            f"failure is usually transient (a partner restarting): retry it, up to "
            f"{MAX_ATTEMPTS} attempts in all.",
            ledger.table(),
        )
    if where[JOBS]:
        raise Fail(
            f"Job {parked['job_id']} failed, and was back in {JOBS} at once, although "
            f"backoff(1) with JOB_BASE_DELAY at an hour asks to wait minutes. An immediate "
            f"retry hammers a partner that is down. Park the job in {RETRY} for "
            f"backoff(attempt) seconds (a per-message expiration) before it goes back.",
            ledger.table(),
        )
    if not where[RETRY]:
        raise Fail(
            f"Job {parked['job_id']} failed, and then it was gone: not in {JOBS}, {RETRY} or "
            f"{DEAD}. A failed job that is acknowledged and not republished is lost, and so "
            f"is any copy a worker consuming with auto_ack=True was sent. Publish it to "
            f"{RETRY}, then ack the original.",
            ledger.table(),
        )
    _each(ctx, "queue_purge", RETRY)

    job = _job("poison", 6, 300)
    ledger = Ledger(ctx, job)
    _put(ctx, job)
    runs, deliveries = 0, 0
    for _ in range(MAX_ATTEMPTS + 2):
        where = _back(ctx)
        if where[RETRY] and not where[JOBS] and not where[DEAD]:
            raise Fail(
                f"Job {job['job_id']} failed attempt {runs} and was still waiting in {RETRY} "
                f"3 s later, although backoff() with JOB_BASE_DELAY 0.02 s and JOB_MAX_DELAY "
                f"0.2 s asks for at most 0.2 s. Each retry should wait backoff(attempt) "
                f"seconds (a per-message expiration), not a fixed TTL of the queue.",
                ledger.table(worker_processes=runs, deliveries=deliveries),
            )
        if where[DEAD] or not where[JOBS]:
            break
        run = _work(ctx, 1, FAST, {job["job_id"]: ["fail", 99]})
        runs += 1
        deliveries += _deliveries(run)
        _finished(run, f"attempt {runs} of a job that always fails", ledger.table())
    where = _settle(ctx, 1, wait=3)
    dead = _drain(ctx, DEAD)
    # The partner's log counts attempts: a delivery the worker took and never handled (one
    # that came back from jobs.retry just before the worker stopped) is not an attempt.
    attempts = _calls(ctx, job)
    table = ledger.table(worker_processes=runs, deliveries=deliveries)
    mine = [
        {
            k: v
            for k, v in h.items()
            if not k.startswith(("x-death", "x-first-death", "x-last-death"))
        }
        for j, h in dead
        if j.get("job_id") == job["job_id"]
    ]
    if not mine:
        if where[RETRY] or where[JOBS]:
            raise Fail(
                f"Job {job['job_id']} fails every time. It was tried {attempts} times, each "
                f"time by a fresh worker process, and it was still being retried: it never "
                f"reached {DEAD}. Give up after {MAX_ATTEMPTS} attempts, and keep the "
                f"attempt count with the message (a header), since a new worker remembers "
                f"nothing.",
                table,
            )
        raise Fail(
            f"Job {job['job_id']} was tried {attempts} times and then it was gone: not in "
            f"{JOBS}, {RETRY} or {DEAD}, so nobody will ever look at it. Publish it to "
            f"{DEAD} when it has used up its attempts.",
            table,
        )
    if attempts != MAX_ATTEMPTS:
        raise Fail(
            f"Job {job['job_id']} reached {DEAD} after {attempts} attempts (calls to "
            f"handle); the task asks for {MAX_ATTEMPTS} attempts in all (the first try and "
            f"{MAX_ATTEMPTS - 1} retries).",
            table,
        )
    return Pass(
        f"A failed job waited in {RETRY}; a job that always fails was tried {MAX_ATTEMPTS} "
        f"times by {runs} worker processes in turn, then parked in {DEAD}"
        f"{' with headers ' + ', '.join(sorted(map(str, mine[0]))) if mine[0] else ''}.",
        table,
    )


@check("timeout")
def timeout(ctx: CheckContext) -> Pass:
    """A hung job is abandoned after JOB_TIMEOUT and retried; the jobs behind it run."""
    _fresh(ctx)
    hung, after, last = _job("hung", 7, 100), _job("behind", 8, 200), _job("behind", 1, 300)
    ledger = Ledger(ctx, hung, after, last)
    _put(ctx, hung, after, last)
    run = _work(ctx, 4, HURRIED, {hung["job_id"]: ["hang", 1]}, timeout=6)
    _settle(ctx)
    behind = [j for j in (after, last) if _payouts(ctx, j) == 0]
    if run.timed_out and behind:
        raise Fail(
            f"The partner call for job {hung['job_id']} hung, and the worker hung with it: "
            f"JOB_TIMEOUT was 1 s, the checker stopped the worker after 6 s, and the "
            f"{len(behind)} jobs behind it were never paid. Bound each job: give up on "
            f"handle() after JOB_TIMEOUT seconds and count that as a failed attempt.",
            ledger.table(),
            _trace(run),
        )
    if run.timed_out:
        raise Fail(
            "Every job was paid, but work() had not returned when the checker stopped it "
            "after 6 s: after max_jobs deliveries (4 here) it should return.",
            ledger.table(),
        )
    _finished(run, "one of its jobs hung", ledger.table())
    for job in (after, last):
        _once(ledger, job, f"Job {hung['job_id']} hung once; job {job['job_id']} behind it ran")
    _once(
        ledger,
        hung,
        f"Job {hung['job_id']} hung on its first attempt and should have been abandoned "
        f"after JOB_TIMEOUT, then retried",
    )
    return Pass(
        f"Job {hung['job_id']} hung; the worker gave up on it after JOB_TIMEOUT, paid the "
        f"two jobs behind it, and paid the hung job on its retry.",
        ledger.table(),
    )
