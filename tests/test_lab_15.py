"""Lab 15 (serverless): answers the proof's cases do not hold, judged right on real servers.

Other correct answers must pass: a break-even solved in closed form step by step with
Decimal money, or searched with bisect's key=; lazy init on first use (a `global`, a
cached function, a holder object that reconnects when lost); settings read once through
a SQL function, with a per-call query whose comment names them; a backfill that keeps a
cursor per job in a table of its own, or a job table with an average-based reserve; one
that saves its thumbnails in one transaction at the end; one that renders every photo
at once on threads, or in batches on threads. Other wrong ones must fail and say why:
negative bills inside the free tier, MB divided by 1,000, answers made up without the
price table, servers by floor division (with or without one added), a break-even that
counts one request at a time, settings read every call through a view or a join, a
handler that closes its reused connection, one that hangs, a backfill that says done
without working, makes up keys, exits, never says done, spends a cold start's first
invocation on nothing, keeps its own clock against a 3 s timeout, does the job in its
init code, hangs, leaves the work to a background thread, or abandons a render in
flight when its time is up. The lab is seeded into a database of this module's own on
the machine's PostgreSQL. The proof runs in test_lab_proofs.
"""

from __future__ import annotations

import dataclasses
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
from sdtutor.services import postgres
from tests.conftest import REPO

LAB_DIR = REPO / "labs" / "15-serverless"
STARTER = {p.name: p.read_text() for p in (LAB_DIR / "starter").glob("*.py")}
SOLUTION = {**STARTER, **{p.name: p.read_text() for p in (LAB_DIR / "solution").glob("*.py")}}


@pytest.fixture(scope="module")
def database(system_postgres: str) -> Iterator[str]:
    name = f"sdtutor_test_serverless_{secrets.token_hex(3)}"
    postgres.create_database(system_postgres, name)
    try:
        url = postgres.with_database(system_postgres, name)
        postgres.run_setup(url, LAB_DIR / "setup.sql")
        yield url
    finally:
        postgres.drop_database(system_postgres, name)


@pytest.fixture(scope="module")
def lab() -> LabSpec:
    return load_lab(LAB_DIR)


def judge(
    lab: LabSpec, database: str, check_id: str, files: dict[str, str], time_limit: float = 0
) -> CheckResult:
    """One check over a workspace that is the solution with `files` laid over it."""
    only = dataclasses.replace(
        lab,
        checks=tuple(c for c in lab.checks if c.id == check_id),
        time_limit=time_limit or lab.time_limit,
    )
    with tempfile.TemporaryDirectory(prefix="sdtutor-lab15-") as tmp:
        workspace = Path(tmp)
        shutil.copyfile(LAB_DIR / "README.md", workspace / "README.md")
        for name, text in {**SOLUTION, **files}.items():
            (workspace / name).write_text(text)
        [result] = run_checks(only, workspace, {"postgres": database}, deadline=60)
    return result


def variant(file: str, *edits: tuple[str, str]) -> str:
    """A solution file with each (old, new) edit made; every `old` must be there."""
    text = SOLUTION[file]
    for old, new in edits:
        assert old in text, f"the solution's {file} no longer has {old!r}"
        text = text.replace(old, new)
    return text


# ------------------------------------------------------------------ correct other ways

# Money in Decimal; the break-even solved as a line's equation on each step of servers.
COST_CLOSED_FORM = """
import math
from decimal import Decimal

MONTH = 30 * 24 * 3600


def _parts(ms, mb, p):
    step = p["billing_granularity_ms"]
    gb_s_each = Decimal(math.ceil(ms / step) * step) / 1000 * Decimal(mb) / 1024
    per_request = Decimal(str(p["price_per_million_requests"])) / 1_000_000
    per_gb_s = Decimal(str(p["price_per_gb_second"]))
    return gb_s_each, per_request, per_gb_s


def monthly_cost_functions(requests, ms, mb, p):
    gb_s_each, per_request, per_gb_s = _parts(ms, mb, p)
    paid = max(Decimal(0), Decimal(requests) - p["free_requests"])
    gb_s = max(Decimal(0), Decimal(requests) * gb_s_each - p["free_gb_seconds"])
    return paid * per_request + gb_s * per_gb_s


def monthly_cost_server(requests, p):
    n = max(p["min_servers"], math.ceil(requests / MONTH / p["server_requests_per_second"]))
    return n * p["server_monthly_price"]


def break_even_requests(ms, mb, p):
    gb_s_each, per_request, per_gb_s = _parts(ms, mb, p)
    fr, fg = Decimal(p["free_requests"]), Decimal(p["free_gb_seconds"])
    kinks = sorted({fr, fg / gb_s_each})
    carry = p["server_requests_per_second"] * MONTH
    n, low = p["min_servers"], 0
    while n < p["min_servers"] + 10_000:
        high = n * carry
        bill = Decimal(str(p["server_monthly_price"])) * n
        # the bill is linear between kinks: solve on each piece
        for start, end in zip([Decimal(0), *kinks], [*kinks, Decimal(high)]):
            slope = (per_request if start >= fr else 0) + (
                gb_s_each * per_gb_s if start >= fg / gb_s_each else 0
            )
            base = monthly_cost_functions(start, ms, mb, p)
            if slope == 0:
                continue
            r = max(math.ceil(start + (bill - base) / slope), low, math.ceil(start))
            if r <= min(end, high) and monthly_cost_functions(r, ms, mb, p) >= bill:
                return r
        low, n = high + 1, n + 1
    return None
"""

PHOTO_LAZY_GLOBAL = """
import os
import psycopg

_conn = None
_cdn = None


def handler(event, context):
    global _conn, _cdn
    if _conn is None:  # first invocation of this instance
        _conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
        _cdn = _conn.execute("SELECT value FROM settings WHERE name = 'cdn_base'").fetchone()[0]
    cur = _conn.cursor()
    cur.execute("SELECT path FROM photos WHERE id = %s", (event["photo_id"],))
    row = cur.fetchone()
    return {"photo_id": event["photo_id"], "url": _cdn + row[0] if row else None}
"""

PHOTO_CACHED_FUNCTION = """
import functools
import os
import psycopg


@functools.cache
def database():
    conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
    with conn.cursor() as cur:
        cur.execute("SELECT name, value FROM settings")
        return conn, dict(cur.fetchall())


def handler(event, context):
    conn, settings = database()
    with conn.cursor() as cur:
        cur.execute("SELECT path FROM photos WHERE id = %(id)s", {"id": event["photo_id"]})
        (path,) = cur.fetchone()
    return {"photo_id": event["photo_id"], "url": f"{settings['cdn_base']}{path}"}
"""

# A cursor per job in a table of its own; a fixed reserve of 300 ms.
BACKFILL_CURSOR = """
import os
import psycopg
from imaging import make_thumbnail

conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
conn.execute(
    "CREATE TABLE IF NOT EXISTS backfill_cursor (job text PRIMARY KEY, next int NOT NULL)"
)


def handler(event, context):
    job, ids = event["job"], event["photo_ids"]
    row = conn.execute("SELECT next FROM backfill_cursor WHERE job = %s", (job,)).fetchone()
    i = row[0] if row else 0
    while i < len(ids):
        if context.get_remaining_time_in_millis() < 300:
            return {"done": False}
        key = make_thumbnail(ids[i])
        with conn.transaction():
            conn.execute(
                "INSERT INTO thumbnails (photo_id, thumb_key) VALUES (%s, %s)", (ids[i], key)
            )
            conn.execute(
                "INSERT INTO backfill_cursor VALUES (%s, %s) "
                "ON CONFLICT (job) DO UPDATE SET next = excluded.next",
                (job, i + 1),
            )
        i += 1
    return {"done": True}
"""

# Renders into memory and saves everything in one transaction just before returning.
BACKFILL_SAVE_AT_END = variant(
    "backfill.py",
    ("    slowest_ms = 0.0\n", "    slowest_ms = 0.0\n    made = []\n"),
    (
        '            return {"done": False, "left": len(todo) - i}',
        '            save(made)\n            return {"done": False, "left": len(todo) - i}',
    ),
    (
        "        conn.execute(\n"
        '            "INSERT INTO thumbnails (photo_id, thumb_key) VALUES (%s, %s) "\n'
        '            "ON CONFLICT (photo_id) DO UPDATE SET thumb_key = excluded.thumb_key",\n'
        "            (photo_id, key),\n"
        "        )\n",
        "        made.append((photo_id, key))\n",
    ),
    ('    return {"done": True}', '    save(made)\n    return {"done": True}'),
    (
        "def handler(",
        "def save(made):\n"
        "    with conn.transaction(), conn.cursor() as cur:\n"
        '        cur.executemany("INSERT INTO thumbnails VALUES (%s, %s)", made)\n\n\n'
        "def handler(",
    ),
)

# Renders every missing photo at once on threads: one invocation is enough.
BACKFILL_THREADS = """
import os
from concurrent.futures import ThreadPoolExecutor
import psycopg
from imaging import make_thumbnail

conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)


def handler(event, context):
    done = {r[0] for r in conn.execute(
        "SELECT photo_id FROM thumbnails WHERE photo_id = ANY(%s)", (event["photo_ids"],))}
    todo = [p for p in event["photo_ids"] if p not in done]
    with ThreadPoolExecutor(max_workers=16) as pool:
        keys = list(pool.map(make_thumbnail, todo))
    for photo_id, key in zip(todo, keys):
        conn.execute("INSERT INTO thumbnails VALUES (%s, %s)", (photo_id, key))
    return {"done": True}
"""

# Ceiling division, and each step of servers searched with bisect's key=.
COST_BISECT_KEY = """
import bisect
import math

MONTH = 2_592_000


def monthly_cost_functions(requests, ms, mb, p):
    step = p["billing_granularity_ms"]
    billed = -(-ms // step) * step  # ceiling division
    gb_s = requests * billed / 1000 * (mb / 1024)
    charge_requests = max(requests - p["free_requests"], 0) * p["price_per_million_requests"] / 1e6
    charge_compute = max(gb_s - p["free_gb_seconds"], 0) * p["price_per_gb_second"]
    return charge_requests + charge_compute


def monthly_cost_server(requests, p):
    servers = max(p["min_servers"], -(-requests // (p["server_requests_per_second"] * MONTH)))
    return servers * p["server_monthly_price"]


def break_even_requests(ms, mb, p):
    carry = p["server_requests_per_second"] * MONTH
    for n in range(p["min_servers"], p["min_servers"] + 100_000):
        low, high = (n - 1) * carry + 1 if n > p["min_servers"] else 0, n * carry
        bill = n * p["server_monthly_price"]
        steps = range(low, high + 1)
        reaches = lambda r: monthly_cost_functions(r, ms, mb, p) >= bill  # noqa: E731
        i = bisect.bisect_left(steps, True, key=reaches)
        if i < len(steps):
            return steps[i]
    return None
"""

# Settings through a SQL function, read once at init; the per-call query's comment
# names them (a word in a comment is not a read).
PHOTO_FUNCTION_ONCE = """
import os
import psycopg

conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
conn.execute(
    "CREATE OR REPLACE FUNCTION app_setting(n text) RETURNS text LANGUAGE sql STABLE "
    "AS $$ SELECT value FROM settings WHERE name = n $$"
)
CDN = conn.execute("SELECT app_setting('cdn_base')").fetchone()[0]


def handler(event, context):
    row = conn.execute(
        "SELECT path FROM photos WHERE id = %s  -- settings were loaded at init",
        (event["photo_id"],),
    ).fetchone()
    return {"photo_id": event["photo_id"], "url": CDN + row[0] if row else None}
"""

# A holder object that connects and loads the settings once, reconnecting only if lost.
PHOTO_RECONNECTING_HOLDER = """
import os
import psycopg


class Instance:
    def __init__(self):
        self.conn = None
        self.settings = None

    def db(self):
        if self.conn is None or self.conn.closed:
            self.conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
        if self.settings is None:
            with self.conn.cursor() as cur:
                cur.execute("SELECT name, value FROM settings")
                self.settings = {name: value for name, value in cur}
        return self.conn


INSTANCE = Instance()


def handler(event, context):
    conn = INSTANCE.db()
    row = conn.execute("SELECT path FROM photos WHERE id = %s", [event["photo_id"]]).fetchone()
    return {"photo_id": event["photo_id"], "url": INSTANCE.settings["cdn_base"] + row[0]}
"""

# Batches of four on threads, a batch only while the slowest batch so far fits twice.
BACKFILL_THREAD_BATCHES = """
import os
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg

from imaging import make_thumbnail

conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
pool = ThreadPoolExecutor(max_workers=4)


def handler(event, context):
    have = {pid for (pid,) in conn.execute(
        "SELECT photo_id FROM thumbnails WHERE photo_id = ANY(%s)", (event["photo_ids"],))}
    todo = [p for p in event["photo_ids"] if p not in have]
    slowest = 0.15
    while todo:
        if context.get_remaining_time_in_millis() / 1000 < 2 * slowest + 0.1:
            return {"done": False}
        batch, todo = todo[:4], todo[4:]
        began = time.monotonic()
        keys = list(pool.map(make_thumbnail, batch))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO thumbnails (photo_id, thumb_key) VALUES (%s, %s)",
                list(zip(batch, keys)),
            )
        slowest = max(slowest, time.monotonic() - began)
    return {"done": True}
"""

# A job table of its own holds progress; the average step times 1.5 plus 200 ms.
BACKFILL_JOB_TABLE = """
import os
import time

import psycopg

from imaging import make_thumbnail

DB = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
DB.execute(
    "CREATE TABLE IF NOT EXISTS backfill_done "
    "(job text, photo_id int, PRIMARY KEY (job, photo_id))"
)


def handler(event, context):
    done = {
        r[0]
        for r in DB.execute("SELECT photo_id FROM backfill_done WHERE job = %s", (event["job"],))
    }
    took = []
    for photo_id in event["photo_ids"]:
        if photo_id in done:
            continue
        average = sum(took) / len(took) if took else 0.1
        if context.get_remaining_time_in_millis() < average * 1000 * 1.5 + 200:
            return {"done": False}
        t = time.perf_counter()
        key = make_thumbnail(photo_id)
        with DB.transaction():
            DB.execute("INSERT INTO thumbnails VALUES (%s, %s, now())", (photo_id, key))
            DB.execute("INSERT INTO backfill_done VALUES (%s, %s)", (event["job"], photo_id))
        took.append(time.perf_counter() - t)
    return {"done": True}
"""

# Bills rounded to the cent, as an invoice shows them.
COST_TO_THE_CENT = variant(
    "cost.py",
    (
        "    return (\n        paid_requests",
        "    return round(\n        paid_requests",
    ),
    (
        '        + paid_gb_seconds * prices["price_per_gb_second"]\n    )',
        '        + paid_gb_seconds * prices["price_per_gb_second"],\n        2,\n    )',
    ),
)

CORRECT: dict[str, tuple[str, dict[str, str]]] = {
    "cost-to-the-cent": ("function-bill", {"cost.py": COST_TO_THE_CENT}),
    "cost-closed-form-decimal-bill": ("function-bill", {"cost.py": COST_CLOSED_FORM}),
    "cost-closed-form-decimal-break-even": ("break-even", {"cost.py": COST_CLOSED_FORM}),
    "photo-lazy-global": ("init-once", {"photo.py": PHOTO_LAZY_GLOBAL}),
    "photo-cached-function": ("init-once", {"photo.py": PHOTO_CACHED_FUNCTION}),
    "backfill-cursor-table": ("stops-in-time", {"backfill.py": BACKFILL_CURSOR}),
    "backfill-save-at-end": ("stops-in-time", {"backfill.py": BACKFILL_SAVE_AT_END}),
    "backfill-threads": ("stops-in-time", {"backfill.py": BACKFILL_THREADS}),
    "cost-bisect-key-bill": ("function-bill", {"cost.py": COST_BISECT_KEY}),
    "cost-bisect-key-break-even": ("break-even", {"cost.py": COST_BISECT_KEY}),
    "photo-function-once": ("init-once", {"photo.py": PHOTO_FUNCTION_ONCE}),
    "photo-reconnecting-holder": ("init-once", {"photo.py": PHOTO_RECONNECTING_HOLDER}),
    "backfill-thread-batches": ("stops-in-time", {"backfill.py": BACKFILL_THREAD_BATCHES}),
    "backfill-job-table": ("stops-in-time", {"backfill.py": BACKFILL_JOB_TABLE}),
}


@pytest.mark.parametrize("name", list(CORRECT))
def test_other_correct_answers_pass(name: str, lab: LabSpec, database: str) -> None:
    check_id, files = CORRECT[name]
    result = judge(lab, database, check_id, files)
    assert result.passed, result.message


# ------------------------------------------------------------------ wrong other ways

COST_UNCLAMPED = variant(
    "cost.py",
    (
        '    paid_requests = max(0, requests_per_month - prices["free_requests"])\n'
        '    paid_gb_seconds = max(0.0, gb_seconds - prices["free_gb_seconds"])\n',
        '    paid_requests = requests_per_month - prices["free_requests"]\n'
        '    paid_gb_seconds = gb_seconds - prices["free_gb_seconds"]\n',
    ),
)

COST_MB_1000 = variant("cost.py", ("* memory_mb / 1024", "* memory_mb / 1000"))

# Lambda's list prices, whatever table it is given.
COST_HARD_CODED = variant(
    "cost.py",
    (
        '    step = prices["billing_granularity_ms"]\n',
        "    prices = {**prices, 'price_per_million_requests': 0.20,\n"
        "              'price_per_gb_second': 0.0000166667, 'billing_granularity_ms': 1,\n"
        "              'free_requests': 1_000_000, 'free_gb_seconds': 400_000}\n"
        '    step = prices["billing_granularity_ms"]\n',
    ),
)

# One request at a time: it would take hours.
COST_COUNTS_UP = variant(
    "cost.py",
    (
        "    per_server = prices",
        "    r = 0\n"
        "    while monthly_cost_functions(r, avg_duration_ms, memory_mb, prices) < "
        "monthly_cost_server(r, prices):\n"
        "        r += 1\n"
        "    return r\n"
        "    per_server = prices",
    ),
)

# `with conn:` closes a psycopg connection at the end of the block: the second
# invocation on an instance finds it closed.
PHOTO_WITH_CLOSES = variant(
    "photo.py",
    (
        '    row = conn.execute("SELECT path FROM photos WHERE id = %s", '
        '(event["photo_id"],)).fetchone()\n',
        "    with conn:\n"
        '        row = conn.execute("SELECT path FROM photos WHERE id = %s", '
        '(event["photo_id"],)).fetchone()\n',
    ),
)

PHOTO_HANGS = variant(
    "photo.py",
    ("def handler(event, context):\n", "def handler(event, context):\n    time.sleep(30)\n"),
    ("import os\n", "import os\nimport time\n"),
)

BACKFILL_LIES = """
def handler(event, context):
    return {"done": True}
"""

BACKFILL_MADE_UP_KEYS = variant(
    "backfill.py", ("key = make_thumbnail(photo_id)", 'key = f"thumbs/{photo_id}.jpg"')
)

BACKFILL_EXITS = variant(
    "backfill.py",
    ('            return {"done": False, "left": len(todo) - i}', "            os._exit(0)"),
)

BACKFILL_NEVER_DONE = variant(
    "backfill.py", ('    return {"done": True}', '    return {"done": False}')
)

# A "warm-up" invocation on every cold start that does nothing but return. (A fixed
# reserve of 850 ms gives up early too, but on a machine so busy that a photo takes 250 ms
# it behaves as a sound handler would, so it cannot be a deterministic case.)
BACKFILL_GIVES_UP_EARLY = variant(
    "backfill.py",
    ("RESERVE_MS = 150", "RESERVE_MS = 150\nWARM = False"),
    (
        "def handler(event, context):\n",
        "def handler(event, context):\n"
        "    global WARM\n"
        "    if not WARM:  # the first invocation of an instance only warms it up\n"
        "        WARM = True\n"
        '        return {"done": False}\n',
    ),
)

# Servers by floor division and one more: traffic that fills 3 servers exactly gets 4.
COST_FLOOR_PLUS_ONE = variant(
    "cost.py",
    (
        'math.ceil(per_second / prices["server_requests_per_second"])',
        'int(per_second // prices["server_requests_per_second"]) + 1',
    ),
)

# Servers by floor division: 2.5 servers' worth of traffic gets 2.
COST_FLOOR_SERVERS = variant(
    "cost.py",
    (
        'math.ceil(per_second / prices["server_requests_per_second"])',
        'int(per_second // prices["server_requests_per_second"])',
    ),
)

# Reads the settings through a view on every call: the view's name does not say settings.
PHOTO_VIEW_EVERY_CALL = """
import os
import psycopg

conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
conn.execute("CREATE OR REPLACE VIEW app_config AS SELECT name, value FROM settings")


def handler(event, context):
    cdn = conn.execute("SELECT value FROM app_config WHERE name = 'cdn_base'").fetchone()[0]
    row = conn.execute("SELECT path FROM photos WHERE id = %s", (event["photo_id"],)).fetchone()
    return {"photo_id": event["photo_id"], "url": cdn + row[0]}
"""

# One statement a call, the settings joined in through a view: a read every time.
PHOTO_JOIN_EVERY_CALL = """
import os
import psycopg

conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)


def handler(event, context):
    (url,) = conn.execute(
        "SELECT c.value || p.path FROM photos p CROSS JOIN config_row c WHERE p.id = %s",
        (event["photo_id"],),
    ).fetchone()
    return {"photo_id": event["photo_id"], "url": url}


conn.execute(
    "CREATE OR REPLACE VIEW config_row AS SELECT value FROM settings WHERE name = 'cdn_base'"
)
"""

# Keeps its own clock against Lambda's default timeout (3 s) instead of asking the context.
BACKFILL_DEFAULT_TIMEOUT = """
import os
import time

import psycopg

from imaging import make_thumbnail

conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
TIMEOUT = 3.0


def handler(event, context):
    began = time.monotonic()
    done = {r[0] for r in conn.execute(
        "SELECT photo_id FROM thumbnails WHERE photo_id = ANY(%s)", (event["photo_ids"],))}
    for photo_id in event["photo_ids"]:
        if photo_id in done:
            continue
        if time.monotonic() - began > TIMEOUT - 0.3:
            return {"done": False}
        key = make_thumbnail(photo_id)
        conn.execute("INSERT INTO thumbnails VALUES (%s, %s)", (photo_id, key))
    return {"done": True}
"""

# Does the whole job at cold start, where no invocation's clock is running.
BACKFILL_IN_INIT = """
import os

import psycopg

from imaging import make_thumbnail

conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
missing = [r[0] for r in conn.execute(
    "SELECT id FROM photos WHERE id NOT IN (SELECT photo_id FROM thumbnails) LIMIT 12")]
for photo_id in missing:
    conn.execute("INSERT INTO thumbnails VALUES (%s, %s)", (photo_id, make_thumbnail(photo_id)))


def handler(event, context):
    return {"done": True}
"""

# Never answers.
BACKFILL_HANGS = """
import time


def handler(event, context):
    time.sleep(60)
    return {"done": True}
"""

# Starts a thread that does the job and returns at once: 'the platform will call again'.
BACKFILL_BACKGROUND = """
import os
import threading

import psycopg

from imaging import make_thumbnail

conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
worker = None


def work(ids):
    for photo_id in ids:
        key = make_thumbnail(photo_id)
        conn.execute(
            "INSERT INTO thumbnails VALUES (%s, %s) ON CONFLICT DO NOTHING", (photo_id, key)
        )


def handler(event, context):
    global worker
    have = {r[0] for r in conn.execute(
        "SELECT photo_id FROM thumbnails WHERE photo_id = ANY(%s)", (event["photo_ids"],))}
    todo = [p for p in event["photo_ids"] if p not in have]
    if not todo:
        return {"done": True}
    if worker is None or not worker.is_alive():
        worker = threading.Thread(target=work, args=(todo,), daemon=True)
        worker.start()
    return {"done": False}
"""

# Waits on each render with a timeout, and abandons the one in flight when time is up.
BACKFILL_ABANDONS = """
import os
from concurrent.futures import ThreadPoolExecutor, TimeoutError

import psycopg

from imaging import make_thumbnail

conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
pool = ThreadPoolExecutor(max_workers=1)


def handler(event, context):
    done = {r[0] for r in conn.execute(
        "SELECT photo_id FROM thumbnails WHERE photo_id = ANY(%s)", (event["photo_ids"],))}
    for photo_id in event["photo_ids"]:
        if photo_id in done:
            continue
        future = pool.submit(make_thumbnail, photo_id)
        try:
            key = future.result(timeout=context.get_remaining_time_in_millis() / 1000 - 0.15)
        except TimeoutError:
            return {"done": False}  # the render in flight is given up
        conn.execute("INSERT INTO thumbnails VALUES (%s, %s)", (photo_id, key))
    return {"done": True}
"""


WRONG: dict[str, tuple[str, dict[str, str], tuple[str, ...]]] = {
    "cost-free-tier-below-zero": ("function-bill", {"cost.py": COST_UNCLAMPED}, ("below zero",)),
    "cost-mb-per-gb-1000": ("function-bill", {"cost.py": COST_MB_1000}, ("1,024 mb",)),
    "cost-hard-coded-prices": ("function-bill", {"cost.py": COST_HARD_CODED}, ("differ",)),
    "cost-counts-up": ("break-even", {"cost.py": COST_COUNTS_UP}, ("did not finish",)),
    "photo-with-closes": ("init-once", {"photo.py": PHOTO_WITH_CLOSES}, ("raised",)),
    "photo-hangs": ("init-once", {"photo.py": PHOTO_HANGS}, ("killed it",)),
    "backfill-lies": ("stops-in-time", {"backfill.py": BACKFILL_LIES}, ("returned done",)),
    "backfill-made-up-keys": (
        "stops-in-time",
        {"backfill.py": BACKFILL_MADE_UP_KEYS},
        ("not one the image service made",),
    ),
    "backfill-exits": ("stops-in-time", {"backfill.py": BACKFILL_EXITS}, ("returns, it does",)),
    "backfill-never-done": (
        "stops-in-time",
        {"backfill.py": BACKFILL_NEVER_DONE},
        ('has not returned {"done": true}',),
    ),
    "backfill-gives-up-early": (
        "stops-in-time",
        {"backfill.py": BACKFILL_GIVES_UP_EARLY},
        ("still left",),
    ),
    "cost-floor-servers": ("break-even", {"cost.py": COST_FLOOR_SERVERS}, ("whole servers",)),
    "cost-floor-plus-one": (
        "break-even",
        {"cost.py": COST_FLOOR_PLUS_ONE},
        ("fills n servers exactly",),
    ),
    "photo-view-every-call": (
        "init-once",
        {"photo.py": PHOTO_VIEW_EVERY_CALL},
        ("read the settings table 30 times",),
    ),
    "photo-join-every-call": (
        "init-once",
        {"photo.py": PHOTO_JOIN_EVERY_CALL},
        ("read the settings table 30 times",),
    ),
    "backfill-default-timeout": (
        "stops-in-time",
        {"backfill.py": BACKFILL_DEFAULT_TIMEOUT},
        ("after its 1 s limit", "get_remaining_time_in_millis"),
    ),
    "backfill-in-init": (
        "stops-in-time",
        {"backfill.py": BACKFILL_IN_INIT},
        ("while an instance's init code ran",),
    ),
    "backfill-hangs": ("stops-in-time", {"backfill.py": BACKFILL_HANGS}, ("killed it",)),
    "backfill-background-thread": (
        "stops-in-time",
        {"backfill.py": BACKFILL_BACKGROUND},
        ("returned done false", "frozen"),
    ),
    "backfill-abandons-render": (
        "stops-in-time",
        {"backfill.py": BACKFILL_ABANDONS},
        ("still running when invocation",),
    ),
}


@pytest.mark.parametrize("name", list(WRONG))
def test_other_wrong_answers_fail_and_say_why(name: str, lab: LabSpec, database: str) -> None:
    check_id, files, says = WRONG[name]
    # A short limit for learner code: the break-even that counts up would spin for all of it.
    result = judge(lab, database, check_id, files, time_limit=2 if "cost" in name else 0)
    assert not result.passed and result.status != "error", result.message
    for phrase in says:
        assert phrase in result.message.lower(), result.message
