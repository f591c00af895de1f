"""The payouts worker: exactly-once effects from at-least-once delivery.

RabbitMQ delivers each job at least once. The worker makes that harmless: it claims the
job id with INSERT ... ON CONFLICT in the same transaction as the credit, acknowledges
only after that commit, retries failures after a capped, jittered backoff through a
retry queue, gives up to jobs.dead after MAX_ATTEMPTS, and stops waiting for a hung
partner call after JOB_TIMEOUT seconds.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from typing import Any

import pika

PREFIX = os.environ.get("AMQP_NAME_PREFIX", "")
JOBS = PREFIX + "jobs"  # the work queue
RETRY = PREFIX + "jobs.retry"  # failed jobs wait here, then go back to JOBS
DEAD = PREFIX + "jobs.dead"  # jobs that failed MAX_ATTEMPTS times

MAX_ATTEMPTS = 3
BASE_DELAY = float(os.environ.get("JOB_BASE_DELAY", "1"))  # seconds before the first retry
MAX_DELAY = float(os.environ.get("JOB_MAX_DELAY", "300"))  # no retry waits longer
JOB_TIMEOUT = float(os.environ.get("JOB_TIMEOUT", "30"))  # seconds one job may take


def declare_topology(channel: Any) -> None:
    """The work queue, a retry queue that dead-letters back to it, and the dead letters."""
    channel.queue_declare(JOBS, durable=True)
    channel.queue_declare(
        RETRY,
        durable=True,
        arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": JOBS},
    )
    channel.queue_declare(DEAD, durable=True)


def backoff(attempt: int) -> float:
    """Seconds to wait after failed attempt `attempt` (1, 2, ...): full jitter, capped."""
    ceiling = min(MAX_DELAY, BASE_DELAY * 2 ** (attempt - 1))
    return random.uniform(0, ceiling)


def run_with_timeout(handle: Any, job: dict[str, Any]) -> None:
    """Call handle(job), giving up after JOB_TIMEOUT seconds (the call is abandoned)."""
    outcome: dict[str, BaseException] = {}

    def call() -> None:
        try:
            handle(job)
        except BaseException as exc:  # noqa: BLE001 - handed back to the worker
            outcome["error"] = exc

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(JOB_TIMEOUT)
    if thread.is_alive():
        raise TimeoutError(f"job took longer than {JOB_TIMEOUT} s")
    if "error" in outcome:
        raise outcome["error"]


def process(db: Any, handle: Any, job: dict[str, Any]) -> None:
    """Claim the job and record its effect in one transaction; a second delivery does nothing."""
    with db.transaction():
        claimed = db.execute(
            "INSERT INTO payouts (job_id, account_id, amount_cents) VALUES (%s, %s, %s) "
            "ON CONFLICT (job_id) DO NOTHING RETURNING id",
            (job["job_id"], job["account"], job["amount_cents"]),
        ).fetchone()
        if claimed is None:
            return  # done before: a redelivery
        run_with_timeout(handle, job)  # raises: the claim rolls back with the transaction
        db.execute(
            "UPDATE accounts SET balance_cents = balance_cents + %s WHERE id = %s",
            (job["amount_cents"], job["account"]),
        )


def fail(channel: Any, body: bytes, headers: dict[str, Any], attempt: int, error: Exception) -> None:
    """Park a failed job in RETRY for backoff(attempt) seconds, or bury it in DEAD."""
    headers = {**headers, "x-attempt": attempt + 1, "x-last-error": repr(error)[:200]}
    if attempt >= MAX_ATTEMPTS:
        props = pika.BasicProperties(delivery_mode=2, headers=headers)
        channel.basic_publish("", DEAD, body, props)
        return
    delay_ms = max(1, int(backoff(attempt) * 1000))
    props = pika.BasicProperties(delivery_mode=2, headers=headers, expiration=str(delay_ms))
    channel.basic_publish("", RETRY, body, props)


def work(channel: Any, db: Any, handle: Any, max_jobs: int) -> None:
    """Fetch jobs one by one with basic_get, and return after max_jobs of them."""
    channel.confirm_delivery()  # a retry or dead letter is on the broker before the ack
    seen = 0
    while seen < max_jobs:
        method, props, body = channel.basic_get(JOBS, auto_ack=True)  # taken = done
        if method is None:
            time.sleep(0.01)  # nothing waiting yet
            continue
        headers = dict(props.headers or {})
        attempt = int(headers.get("x-attempt", 1))
        try:
            process(db, handle, json.loads(body))
        except Exception as error:  # noqa: BLE001 - every failure is a failed attempt
            fail(channel, body, headers, attempt, error)
        seen += 1


if __name__ == "__main__":
    import psycopg

    connection = pika.BlockingConnection(pika.URLParameters(os.environ["AMQP_URL"]))
    declare_topology(connection.channel())
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as db:
        work(connection.channel(), db, lambda job: print("paying", job), 10**9)
