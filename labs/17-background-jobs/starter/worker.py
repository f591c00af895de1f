"""The payouts worker. It works on a quiet day; read README.md for what breaks it.

RabbitMQ delivers each payout job at least once. This worker assumes exactly once.
"""

from __future__ import annotations

import json
import os
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
    """The queues the worker uses."""
    channel.queue_declare(JOBS, durable=True)


def backoff(attempt: int) -> float:
    """Seconds to wait after failed attempt `attempt` (1, 2, ...)."""
    return BASE_DELAY * 2**attempt


def process(db: Any, handle: Any, job: dict[str, Any]) -> None:
    """Call the payment partner, then record the payout and credit the account."""
    handle(job)
    db.execute(
        "INSERT INTO payouts (job_id, account_id, amount_cents) VALUES (%s, %s, %s)",
        (job["job_id"], job["account"], job["amount_cents"]),
    )
    db.execute(
        "UPDATE accounts SET balance_cents = balance_cents + %s WHERE id = %s",
        (job["amount_cents"], job["account"]),
    )


def work(channel: Any, db: Any, handle: Any, max_jobs: int) -> None:
    """Take jobs from JOBS and return after max_jobs deliveries."""
    seen = 0
    for _method, _props, body in channel.consume(JOBS, auto_ack=True):
        try:
            process(db, handle, json.loads(body))
        except Exception:
            channel.basic_publish("", JOBS, body)  # try again
        seen += 1
        if seen >= max_jobs:
            break
    channel.cancel()


if __name__ == "__main__":
    import psycopg

    connection = pika.BlockingConnection(pika.URLParameters(os.environ["AMQP_URL"]))
    declare_topology(connection.channel())
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as db:
        work(connection.channel(), db, lambda job: print("paying", job), 10**9)
