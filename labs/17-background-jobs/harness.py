"""Runs the learner's worker.py the way the payouts service would; runs in their process.

The checks run these functions through the runner, which puts this file into the
sandbox's copy of the workspace beside worker.py (`ctx.run(..., files=...)`). Here the
job handler plays the payment partner: it logs each call in partner_calls (on a
connection of its own), and fails, hangs or dies on cue. Nothing here decides a
verdict: the learner's code could change what these functions return, so the checks
judge from the effects table, the queues, and the AMQP methods the proxy saw.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from sdtutor.lab.runner.harness import import_learner

HANG = 20.0
"""Seconds a hanging partner call takes: far beyond the job timeout the checks set."""
MEET_WAIT = 1.5
"""Seconds a partner call waits for a second worker to call for the same job."""
CRASH_EXIT = 17


def _learner(file: str, settings: dict[str, str]) -> Any:
    """The learner's module, imported afresh after the checker's settings are in place."""
    os.environ.update(settings)  # JOB_BASE_DELAY, JOB_MAX_DELAY, JOB_TIMEOUT
    return import_learner(Path(__file__).with_name(file))


def topology(channel_source: Any, file: str) -> str:
    """Call declare_topology(channel) on a fresh channel."""
    _learner(file, {}).declare_topology(channel_source.channel())
    return "declared"


def samples(file: str, settings: dict[str, str], attempts: list[int], n: int) -> list[list[Any]]:
    """backoff(attempt) called n times for each attempt."""
    module = _learner(file, settings)
    return [[module.backoff(a) for _ in range(n)] for a in attempts]


def _partner() -> Any:
    """The partner's own log connection (autocommit), apart from the worker's."""
    import psycopg

    return psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)


def work(
    amqp: Any,
    db: Any,
    file: str,
    settings: dict[str, str],
    behaviour: dict[str, list[Any]],
    crash: str,
    max_jobs: int,
) -> dict[str, Any]:
    """Call work(channel, db, handle, max_jobs) with the partner as handle.

    behaviour maps a job id to [what, n]: "fail" raises on its first n calls, "hang"
    hangs on its first n calls, "meet" waits (up to MEET_WAIT) until a second worker
    calls for the same job. crash: "" runs normally; "handle" kills the process in the
    first partner call; "ack" kills it when the worker is about to send its first
    basic.ack, after the partner call and whatever the worker recorded.
    """
    module = _learner(file, settings)
    log = _partner()
    me = os.getpid()

    def handle(job: Any) -> None:
        if isinstance(job, bytes | bytearray | str):
            import json

            job = json.loads(job)
        job_id = str(job.get("job_id")) if isinstance(job, dict) else str(job)
        log.execute("INSERT INTO partner_calls (job_id, worker) VALUES (%s, %s)", (job_id, me))
        if crash == "handle":
            os._exit(CRASH_EXIT)  # like kill -9 or an OOM kill: no except, no finally
        row = log.execute(
            "SELECT count(*) FROM partner_calls WHERE job_id = %s", (job_id,)
        ).fetchone()
        calls = int(row[0]) if row else 1
        what, n = (behaviour.get(job_id) or ["", 0])[:2]
        if what == "fail" and calls <= int(n):
            raise RuntimeError(f"payment partner answered 503 for {job_id} (call {calls})")
        if what == "hang" and calls <= int(n):
            time.sleep(HANG)
        if what == "meet":
            deadline = time.monotonic() + MEET_WAIT
            while time.monotonic() < deadline:
                row = log.execute(
                    "SELECT count(DISTINCT worker) FROM partner_calls WHERE job_id = %s",
                    (job_id,),
                ).fetchone()
                if row and row[0] >= 2:
                    break
                time.sleep(0.02)

    if crash == "ack":
        from pika.adapters.blocking_connection import BlockingChannel

        def dying_ack(self: Any, *args: Any, **kwargs: Any) -> None:
            os._exit(CRASH_EXIT)  # the effect is recorded; the ack never leaves

        BlockingChannel.basic_ack = dying_ack  # type: ignore[method-assign]

    module.work(amqp.channel(), db, handle, max_jobs)
    return {"worker": me}
