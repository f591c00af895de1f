"""The background-jobs lab (17): other answers than the reference, judged.

The proof (`sdtutor content check`) runs the starter, the solution and the wrong cases.
These tests answer the lab other ways: correct ones that must pass (a claim table
beside payouts, a basic_get loop, a timeout by SIGALRM, the attempt read from the
x-death count, equal jitter, a callback consumer with a prefetch of 5) and wrong ones
the proof does not hold (no cap, linear growth, a jitter too small to matter, a credit
before the record, a claim committed before the work, a retry queue with a fixed TTL, a
nack with requeue, a worker that never returns, one that does nothing), each failing
exactly the checks named, with a message that says why.

They run on the machine's own servers through the external provider, in a namespace of
this module (names under its prefix on the shared RabbitMQ), removed at the end.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdtutor.content.loader import load_lab
from sdtutor.content.models import LabSpec
from sdtutor.lab.checks import run_checks
from sdtutor.lab.results import CheckResult
from sdtutor.providers import provider_class
from sdtutor.services.base import Access, Target, kind
from sdtutor.services.names import Names
from tests.conftest import REPO, SYSTEM_AMQP, SYSTEM_POSTGRES

LAB_DIR = REPO / "labs" / "17-background-jobs"
SOLUTION = {p.name: p.read_text() for p in (LAB_DIR / "solution").iterdir()}
WORKER = SOLUTION["worker.py"]


@dataclasses.dataclass
class Lab:
    lab: LabSpec
    access: dict[str, Access]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The lab's namespaces on the machine's PostgreSQL and RabbitMQ (external provider)."""
    saved = {
        k: os.environ.get(k) for k in ("SDTUTOR_HOME", "SDTUTOR_POSTGRES_URL", "SDTUTOR_AMQP_URL")
    }
    os.environ["SDTUTOR_HOME"] = str(tmp_path_factory.mktemp("lab17-home"))
    os.environ["SDTUTOR_POSTGRES_URL"] = SYSTEM_POSTGRES
    os.environ["SDTUTOR_AMQP_URL"] = SYSTEM_AMQP
    provider = provider_class("external")()
    spec = load_lab(LAB_DIR)
    slug = f"background-jobs-test-{secrets.token_hex(2)}"
    endpoints = provider.start(slug, spec.instances)
    names = Names.for_lab(slug)
    targets = {
        i.name: Target(endpoints[i.name].url, names, i.name, spec, endpoints[i.name].handle)
        for i in spec.instances
    }
    try:
        yield Lab(spec, {n: kind(n).provision(t, fresh=True) for n, t in targets.items()})
    finally:
        for name, target in targets.items():
            kind(name).teardown(target, purge=True)
        provider.stop(slug, endpoints)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def judge(lab: Lab, files: dict[str, str], *check_ids: str) -> dict[str, CheckResult]:
    """Run some checks on the solution with `files` laid over it (schema.sql applied)."""
    spec = dataclasses.replace(
        lab.lab, checks=tuple(c for c in lab.lab.checks if c.id in check_ids)
    )
    with tempfile.TemporaryDirectory(prefix="sdtutor-lab17-") as tmp:
        workspace = Path(tmp)
        shutil.copyfile(LAB_DIR / "README.md", workspace / "README.md")
        for name, text in {**SOLUTION, **files}.items():
            (workspace / name).write_text(text)
        pg = kind("postgres")
        target_access = lab.access["postgres"]
        with __import__("psycopg").connect(target_access.url, autocommit=True) as conn:
            conn.execute("ALTER TABLE payouts DROP CONSTRAINT IF EXISTS payouts_job_id_key")
            conn.execute("DROP TABLE IF EXISTS done_jobs")
        pg.apply_file(target_access, workspace / "schema.sql")
        results = run_checks(
            spec,
            workspace,
            {n: a.url for n, a in lab.access.items()},
            prefixes={n: a.prefix for n, a in lab.access.items()},
        )
    return {r.id: r for r in results}


def _swap(text: str, *pairs: tuple[str, str]) -> str:
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new)
    return text


PROCESS = WORKER[WORKER.index("def process(") : WORKER.index("def fail(")]
WORK = WORKER[WORKER.index("def work(") : WORKER.index('if __name__ == "__main__":')]

# Another correct answer: a claim table of its own, a basic_get loop, a timeout by
# SIGALRM, and the attempt number read from the x-death count the retry queue adds.
CLAIM_TABLE_SCHEMA = "CREATE TABLE done_jobs (job_id text PRIMARY KEY);\n"
CLAIM_TABLE_PROCESS = '''def process(db: Any, handle: Any, job: dict[str, Any]) -> None:
    """Claim in done_jobs and credit, in one transaction."""
    import signal

    def expired(signum: int, frame: Any) -> None:
        raise TimeoutError("job timed out")

    with db.transaction():
        cur = db.cursor()
        cur.execute(
            "INSERT INTO done_jobs VALUES (%s) ON CONFLICT DO NOTHING", (job["job_id"],)
        )
        if cur.rowcount == 0:
            return
        signal.signal(signal.SIGALRM, expired)
        signal.setitimer(signal.ITIMER_REAL, JOB_TIMEOUT)
        try:
            handle(job)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        cur.execute(
            "INSERT INTO payouts (job_id, account_id, amount_cents) VALUES (%s, %s, %s)",
            (job["job_id"], job["account"], job["amount_cents"]),
        )
        cur.execute(
            "UPDATE accounts SET balance_cents = balance_cents + %s WHERE id = %s",
            (job["amount_cents"], job["account"]),
        )


'''
GET_LOOP_WORK = '''def work(channel: Any, db: Any, handle: Any, max_jobs: int) -> None:
    """Poll with basic_get; the attempt is 1 + the times the job expired from RETRY."""
    import time

    seen = 0
    while seen < max_jobs:
        method, props, body = channel.basic_get(JOBS)
        if method is None:
            time.sleep(0.01)
            continue
        headers = dict(props.headers or {})
        deaths = [d for d in headers.get("x-death", []) if d.get("queue") == RETRY]
        attempt = 1 + sum(int(d.get("count", 0)) for d in deaths)
        try:
            process(db, handle, json.loads(body))
        except Exception as error:
            fail(channel, body, headers, attempt, error)
        channel.basic_ack(method.delivery_tag)
        seen += 1


'''
# Equal jitter: half the ceiling fixed, half random.
EQUAL_JITTER = (
    "    return random.uniform(0, ceiling)",
    "    return ceiling / 2 + random.uniform(0, ceiling / 2)",
)
# A callback consumer, stopped from inside after max_jobs.
CALLBACK_WORK = '''def work(channel: Any, db: Any, handle: Any, max_jobs: int) -> None:
    """basic_consume with a callback; stop_consuming after max_jobs deliveries."""
    channel.basic_qos(prefetch_count=5)
    count = {"seen": 0}

    def on_message(ch: Any, method: Any, props: Any, body: bytes) -> None:
        headers = dict(props.headers or {})
        attempt = int(headers.get("x-attempt", 1))
        try:
            process(db, handle, json.loads(body))
        except Exception as error:
            fail(ch, body, headers, attempt, error)
        ch.basic_ack(delivery_tag=method.delivery_tag)
        count["seen"] += 1
        if count["seen"] >= max_jobs:
            ch.stop_consuming()

    channel.basic_consume(JOBS, on_message)
    channel.start_consuming()


'''

ALL = (
    "redelivery",
    "crash-after-effect",
    "crash-in-job",
    "two-workers",
    "backoff",
    "retries",
    "timeout",
)


@pytest.mark.slow
@pytest.mark.parametrize(
    "files",
    [
        pytest.param(
            {
                "schema.sql": CLAIM_TABLE_SCHEMA,
                "worker.py": _swap(
                    WORKER, (PROCESS, CLAIM_TABLE_PROCESS), (WORK, GET_LOOP_WORK), EQUAL_JITTER
                ),
            },
            id="claim-table-basic-get-sigalrm-x-death-equal-jitter",
        ),
        pytest.param(
            {"worker.py": _swap(WORKER, (WORK, CALLBACK_WORK))}, id="callback-consumer-prefetch-5"
        ),
    ],
)
def test_other_correct_answers_pass(lab: Lab, files: dict[str, str]) -> None:
    results = judge(lab, files, *ALL)
    assert {i: r.message for i, r in results.items() if not r.passed} == {}


NO_CAP = (
    "    ceiling = min(MAX_DELAY, BASE_DELAY * 2 ** (attempt - 1))",
    "    ceiling = BASE_DELAY * 2 ** (attempt - 1)",
)
LINEAR = (
    "    ceiling = min(MAX_DELAY, BASE_DELAY * 2 ** (attempt - 1))",
    "    ceiling = min(MAX_DELAY, BASE_DELAY * attempt)",
)
TINY_JITTER = (
    "    return random.uniform(0, ceiling)",
    "    return ceiling + random.uniform(0, 0.001)",
)
UPDATE_FIRST = '''def process(db: Any, handle: Any, job: dict[str, Any]) -> None:
    """Check, pay, credit, then record: two workers both credit before either records."""
    if db.execute("SELECT 1 FROM payouts WHERE job_id = %s", (job["job_id"],)).fetchone():
        return
    run_with_timeout(handle, job)
    db.execute(
        "UPDATE accounts SET balance_cents = balance_cents + %s WHERE id = %s",
        (job["amount_cents"], job["account"]),
    )
    db.execute(
        "INSERT INTO payouts (job_id, account_id, amount_cents) VALUES (%s, %s, %s)",
        (job["job_id"], job["account"], job["amount_cents"]),
    )


'''
FIXED_TTL_RETRY = (
    """        arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": JOBS},""",
    """        arguments={
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": JOBS,
            "x-message-ttl": 5000,
        },""",
)
NO_PER_MESSAGE_DELAY = (
    "props = pika.BasicProperties(delivery_mode=2, headers=headers, expiration=str(delay_ms))",
    "props = pika.BasicProperties(delivery_mode=2, headers=headers)",
)
REQUEUE = '''def work(channel: Any, db: Any, handle: Any, max_jobs: int) -> None:
    """On failure, nack with requeue=True: the broker hands the job straight back."""
    seen = 0
    for method, _props, body in channel.consume(JOBS):
        try:
            process(db, handle, json.loads(body))
            channel.basic_ack(method.delivery_tag)
        except Exception:
            channel.basic_nack(method.delivery_tag, requeue=True)
        seen += 1
        if seen >= max_jobs:
            break
    channel.cancel()


'''
CLAIM_COMMITTED_ALONE = (
    """    with db.transaction():
        claimed""",
    """    if True:  # autocommit: the claim commits on its own, before the partner call
        claimed""",
)
NEVER_RETURNS = '''def work(channel: Any, db: Any, handle: Any, max_jobs: int) -> None:
    """Loops forever, whatever max_jobs says."""
    for method, _props, body in channel.consume(JOBS):
        process(db, handle, json.loads(body))
        channel.basic_ack(method.delivery_tag)


'''
LIES = '''def work(channel: Any, db: Any, handle: Any, max_jobs: int) -> None:
    """Claims success without touching a job."""
    return None


'''


@pytest.mark.slow
@pytest.mark.parametrize(
    ("files", "checks", "said"),
    [
        pytest.param(
            {"worker.py": _swap(WORKER, NO_CAP)}, ["backoff"], "above MAX_DELAY", id="no-cap"
        ),
        pytest.param(
            {"worker.py": _swap(WORKER, LINEAR)}, ["backoff"], "Multiply by 2", id="linear"
        ),
        pytest.param(
            {"worker.py": _swap(WORKER, TINY_JITTER)}, ["backoff"], "Add jitter", id="tiny-jitter"
        ),
        pytest.param(
            {"worker.py": _swap(WORKER, (PROCESS, UPDATE_FIRST))},
            ["two-workers"],
            "more than once",
            id="check-then-credit-with-unique-key",
        ),
        pytest.param(
            {"worker.py": _swap(WORKER, FIXED_TTL_RETRY, NO_PER_MESSAGE_DELAY)},
            ["retries"],
            "not a fixed TTL",
            id="fixed-ttl-retry-queue",
        ),
        pytest.param(
            {"worker.py": _swap(WORKER, (WORK, REQUEUE))},
            ["retries"],
            "back in jobs at once",
            id="nack-requeue",
        ),
        pytest.param(
            {"worker.py": _swap(WORKER, CLAIM_COMMITTED_ALONE)},
            ["crash-in-job", "retries", "timeout"],
            "never paid",
            id="claim-committed-before-the-work",
        ),
        pytest.param(
            {"worker.py": _swap(WORKER, (WORK, NEVER_RETURNS))},
            ["redelivery"],
            "did not finish in time",
            id="never-returns",
        ),
        pytest.param(
            {"worker.py": _swap(WORKER, (WORK, LIES))},
            ["redelivery", "crash-in-job"],
            "never paid",
            id="does-nothing",
        ),
    ],
)
def test_other_wrong_answers_fail_saying_why(
    lab: Lab, files: dict[str, str], checks: list[str], said: str
) -> None:
    results = judge(lab, files, *checks)
    failed = [r for r in results.values() if not r.passed]
    assert len(failed) == len(checks), {i: r.message for i, r in results.items()}
    assert any(said in r.message for r in failed), [r.message for r in failed]
