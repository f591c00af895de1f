"""Lab 01 (monolith-vs-microservices): answers the proof's cases do not hold, judged
right on a real server.

Other correct answers must pass: grants spelled table by table, tables copied into new
schemas rather than moved, a view or function that runs with the reader's rights,
default privileges that keep each module to itself; order placement with requests, with
http.client and a single try, with a thread and a deadline, with raw asyncio streams,
with a SIGALRM deadline, with a random or hashed idempotency key, printing a flood.
Other wrong ones must fail and say why: a foreign key kept across modules, a role made a
member of the tables' owner, a view, a rule, a SECURITY DEFINER function or trigger, or
default privileges reaching the other module; 'rejected' on a timeout or a 5xx, a
timeout shorter than healthy answers, attempts that add up past the budget, one key for
every order, code that lies (says confirmed without asking, stops time.monotonic),
retries the whole checkout, retries in the background or in a forked process after
returning, hangs, does not import, or retries a 409. Runs on the machine's PostgreSQL
in a namespace of this module; the proof itself runs in test_lab_proofs.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psycopg
import pytest

from sdtutor.content.loader import load_lab
from sdtutor.content.models import LabSpec
from sdtutor.lab.checks import run_checks
from sdtutor.lab.results import CheckResult
from sdtutor.services.base import Access, Target, kind
from sdtutor.services.names import Names, home_id
from tests.conftest import REPO

LAB_DIR = REPO / "labs" / "01-monolith-vs-microservices"
SOLUTION = {p.name: p.read_text() for p in (LAB_DIR / "solution").iterdir() if p.is_file()}
ORDER_CHECKS = ("healthy-reserves", "degrades-in-time", "retries-bounded")


@dataclasses.dataclass
class Shop:
    lab: LabSpec
    target: Target


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, system_postgres: str) -> Iterator[Shop]:
    home = tmp_path_factory.mktemp("home-01")
    previous = os.environ.get("SDTUTOR_HOME")
    os.environ["SDTUTOR_HOME"] = str(home)
    lab = load_lab(LAB_DIR)
    target = Target(
        system_postgres,
        Names(home_id(), f"monolith-test-{secrets.token_hex(2)}"),
        "postgres",
        lab,
    )
    try:
        yield Shop(lab, target)
    finally:
        kind("postgres").teardown(target, purge=True)
        if previous is None:
            os.environ.pop("SDTUTOR_HOME", None)
        else:
            os.environ["SDTUTOR_HOME"] = previous


def judge(
    shop: Shop, check_ids: tuple[str, ...], files: dict[str, str], admin: str = ""
) -> list[CheckResult]:
    """Some checks, in one run, on a fresh copy of the seeded data with boundaries.sql
    applied (then `admin`, run as the server's admin, {login} standing for the lab's
    login), over a workspace that is the solution with `files` laid over it. The three
    order checks share one run of the learner's code, as in `lab check`."""
    lab = dataclasses.replace(
        shop.lab, checks=tuple(c for c in shop.lab.checks if c.id in check_ids)
    )
    access: Access = kind("postgres").provision(shop.target, fresh=True)
    with tempfile.TemporaryDirectory(prefix="sdtutor-lab01-") as tmp:
        workspace = Path(tmp)
        shutil.copyfile(LAB_DIR / "README.md", workspace / "README.md")
        for name, text in {**SOLUTION, **files}.items():
            (workspace / name).write_text(text)
        kind("postgres").apply_file(access, workspace / "boundaries.sql")
        if admin:
            login = unquote(urlsplit(access.url).username or "")
            with psycopg.connect(shop.target.admin_url, autocommit=True) as conn:
                conn.execute(admin.format(login=login))
        return run_checks(lab, workspace, {"postgres": access.url}, deadline=120)


def variant(file: str, *edits: tuple[str, str]) -> str:
    """A solution file with each (old, new) edit made; every `old` must be there."""
    text = SOLUTION[file]
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    return text


# ------------------------------------------------------------------ boundaries.sql

GRANTS_PER_TABLE = """
CREATE SCHEMA orders;
CREATE SCHEMA inventory;
ALTER TABLE order_lines DROP CONSTRAINT order_lines_sku_fkey;
ALTER TABLE reservations DROP CONSTRAINT reservations_order_id_fkey;
ALTER TABLE orders SET SCHEMA orders;
ALTER TABLE order_lines SET SCHEMA orders;
ALTER TABLE products SET SCHEMA inventory;
ALTER TABLE stock SET SCHEMA inventory;
ALTER TABLE reservations SET SCHEMA inventory;
REVOKE SELECT ON orders.orders, orders.order_lines, inventory.products, inventory.stock,
    inventory.reservations FROM PUBLIC;
REVOKE INSERT, UPDATE, DELETE, SELECT ON inventory.products, inventory.stock,
    inventory.reservations FROM :"orders";
REVOKE INSERT, UPDATE, DELETE, SELECT ON orders.orders, orders.order_lines FROM :"inventory";
GRANT USAGE ON SCHEMA orders TO :"orders";
GRANT USAGE ON SCHEMA inventory TO :"inventory";
"""

COPIED = """
BEGIN;
CREATE SCHEMA orders;
CREATE SCHEMA inventory;
CREATE TABLE orders.orders (LIKE public.orders INCLUDING ALL);
INSERT INTO orders.orders SELECT * FROM public.orders;
SELECT setval(pg_get_serial_sequence('orders.orders', 'id'), max(id)) FROM orders.orders;
CREATE TABLE orders.order_lines (LIKE public.order_lines INCLUDING ALL);
INSERT INTO orders.order_lines SELECT * FROM public.order_lines;
SELECT setval(pg_get_serial_sequence('orders.order_lines', 'id'), max(id))
    FROM orders.order_lines;
ALTER TABLE orders.order_lines ADD FOREIGN KEY (order_id) REFERENCES orders.orders;
CREATE TABLE inventory.products AS SELECT * FROM public.products;
ALTER TABLE inventory.products ADD PRIMARY KEY (sku);
CREATE TABLE inventory.stock AS SELECT * FROM public.stock;
CREATE TABLE inventory.reservations AS SELECT * FROM public.reservations;
DROP TABLE public.reservations, public.order_lines, public.stock, public.orders,
    public.products;
GRANT USAGE ON SCHEMA orders TO :"orders";
GRANT ALL ON ALL TABLES IN SCHEMA orders TO :"orders";
GRANT USAGE ON SCHEMA inventory TO :"inventory";
GRANT ALL ON ALL TABLES IN SCHEMA inventory TO :"inventory";
COMMIT;
"""

FK_KEPT = variant(
    "boundaries.sql",
    ("ALTER TABLE order_lines DROP CONSTRAINT order_lines_sku_fkey;\n", ""),
)


# A view reads with its owner's rights: granting it hands over inventory's rows...
STOCK_VIEW = (
    SOLUTION["boundaries.sql"]
    + """
CREATE VIEW orders.stock_levels AS SELECT sku, on_hand - reserved AS available
    FROM inventory.stock;
GRANT SELECT ON orders.stock_levels TO :"orders";
"""
)
# ...unless it runs with the reader's rights, which the orders role lacks there.
INVOKER_VIEW = STOCK_VIEW.replace(
    "CREATE VIEW orders.stock_levels AS",
    "CREATE VIEW orders.stock_levels\n    WITH (security_invoker = true) AS",
)

# A SECURITY DEFINER function runs with its owner's rights (the owner of both modules'
# tables), and every role may EXECUTE a new function: a route around every REVOKE...
DEFINER_FUNCTION = (
    SOLUTION["boundaries.sql"]
    + """
CREATE FUNCTION public.stock_of(wanted text) RETURNS integer
    LANGUAGE sql SECURITY DEFINER STABLE
    AS $$ SELECT on_hand - reserved FROM inventory.stock WHERE sku = wanted $$;
"""
)
# ...also as a trigger, which fires without EXECUTE when the orders role writes a line...
DEFINER_TRIGGER = (
    SOLUTION["boundaries.sql"]
    + """
CREATE FUNCTION orders.hold_stock() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    UPDATE inventory.stock SET reserved = reserved + NEW.qty WHERE sku = NEW.sku;
    RETURN NEW;
END $$;
REVOKE EXECUTE ON FUNCTION orders.hold_stock() FROM PUBLIC;
CREATE TRIGGER hold_stock AFTER INSERT ON orders.order_lines
    FOR EACH ROW EXECUTE FUNCTION orders.hold_stock();
"""
)
# ...and a rule's actions run with its table's owner's rights...
STOCK_RULE = (
    SOLUTION["boundaries.sql"]
    + """
CREATE RULE hold_stock AS ON INSERT TO orders.order_lines
    DO ALSO UPDATE inventory.stock SET reserved = reserved + NEW.qty WHERE sku = NEW.sku;
"""
)
# ...and default privileges hand over every table inventory makes from now on.
DEFAULTS_ACROSS = (
    SOLUTION["boundaries.sql"]
    + """
ALTER DEFAULT PRIVILEGES IN SCHEMA inventory GRANT SELECT ON TABLES TO :"orders";
"""
)
# Correct: a function that runs with the caller's rights, a SECURITY DEFINER one no
# module role may call, and default privileges that keep each module to itself.
INVOKER_FUNCTION_AND_OWN_DEFAULTS = (
    SOLUTION["boundaries.sql"]
    + """
CREATE FUNCTION public.stock_of(wanted text) RETURNS integer
    LANGUAGE sql STABLE
    AS $$ SELECT on_hand - reserved FROM inventory.stock WHERE sku = wanted $$;
CREATE FUNCTION public.stock_report() RETURNS bigint
    LANGUAGE sql STABLE SECURITY DEFINER
    AS $$ SELECT sum(on_hand) FROM inventory.stock $$;
REVOKE EXECUTE ON FUNCTION public.stock_report() FROM PUBLIC;
ALTER DEFAULT PRIVILEGES IN SCHEMA inventory GRANT SELECT, INSERT, UPDATE ON TABLES TO :"inventory";
ALTER DEFAULT PRIVILEGES IN SCHEMA orders GRANT SELECT, INSERT, UPDATE ON TABLES TO :"orders";
ALTER DEFAULT PRIVILEGES IN SCHEMA orders GRANT USAGE ON SEQUENCES TO :"orders";
"""
)

# ------------------------------------------------------------------ orders.py

SAVE = """
def _save(conn, order):
    with conn.transaction():
        order_id = conn.execute(
            "INSERT INTO orders (customer, status) VALUES (%s, 'pending') RETURNING id",
            (order["customer"],),
        ).fetchone()[0]
        for line in order["lines"]:
            conn.execute(
                "INSERT INTO order_lines (order_id, sku, qty) VALUES (%s, %s, %s)",
                (order_id, line["sku"], line["qty"]),
            )
    return order_id


def _finish(conn, order_id, status):
    if status != "pending":
        conn.execute("UPDATE orders SET status = %s WHERE id = %s", (status, order_id))
    return {"order_id": order_id, "status": status}
"""

WITH_REQUESTS = (
    """
import time
import requests

session = requests.Session()
"""
    + SAVE
    + """

def place_order(conn, inventory_url, order):
    order_id = _save(conn, order)
    ends = time.monotonic() + 1.1
    for attempt in range(3):
        left = ends - time.monotonic()
        if left <= 0:
            break
        try:
            reply = session.post(
                f"{inventory_url}/reservations",
                json={"order_id": order_id, "lines": order["lines"]},
                headers={"Idempotency-Key": f"shop-order-{order_id}"},
                timeout=(min(0.2, left), min(0.45, left)),
            )
        except requests.RequestException:
            time.sleep(0.05 * (attempt + 1))
            continue
        if reply.status_code == 201:
            return _finish(conn, order_id, "confirmed")
        if reply.status_code == 409:
            return _finish(conn, order_id, "rejected")
        time.sleep(0.05 * (attempt + 1))
    return _finish(conn, order_id, "pending")
"""
)

ONE_TRY_HTTP_CLIENT = (
    """
import http.client
import json
from urllib.parse import urlsplit
"""
    + SAVE
    + """

def place_order(conn, inventory_url, order):
    order_id = _save(conn, order)
    url = urlsplit(inventory_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=1.0)
    try:
        connection.request(
            "POST",
            url.path + "/reservations",
            body=json.dumps({"order_id": order_id, "lines": order["lines"]}),
            headers={"Content-Type": "application/json", "Idempotency-Key": str(order_id)},
        )
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException):
        status = None
    finally:
        connection.close()
    return _finish(conn, order_id, {201: "confirmed", 409: "rejected"}.get(status, "pending"))
"""
)

EXECUTOR_DEADLINE = (
    """
import concurrent.futures
import json
import urllib.error
import urllib.request

pool = concurrent.futures.ThreadPoolExecutor(max_workers=8)
"""
    + SAVE
    + """

def _ask(inventory_url, order_id, lines):
    request = urllib.request.Request(
        f"{inventory_url}/reservations",
        data=json.dumps({"order_id": order_id, "lines": lines}).encode(),
        headers={"Content-Type": "application/json", "Idempotency-Key": f"o{order_id}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code


def place_order(conn, inventory_url, order):
    order_id = _save(conn, order)
    future = pool.submit(_ask, inventory_url, order_id, order["lines"])
    try:
        code = future.result(timeout=1.0)  # the deadline, whatever the socket does
    except Exception:
        code = None
    return _finish(conn, order_id, {201: "confirmed", 409: "rejected"}.get(code, "pending"))
"""
)

UUID_KEY = variant(
    "orders.py",
    ("import json\n", "import json\nimport uuid\n"),
    (
        '        "Idempotency-Key": f"order-{order_id}",\n',
        '        "Idempotency-Key": str(uuid.uuid4()),  # one per order, kept for its retries\n',
    ),
)

REJECTED_ON_TIMEOUT = variant(
    "orders.py",
    (
        '        return {"order_id": order_id, "status": "pending"}',
        '        status = "rejected"  # no stock confirmed, no sale',
    ),
)

TOO_TIGHT = variant("orders.py", ("PER_TRY = 0.6 ", "PER_TRY = 0.1 "))

PAST_THE_BUDGET = variant(
    "orders.py",
    ("DEADLINE = 1.2 ", "DEADLINE = 60 "),
    ("PER_TRY = 0.6 ", "PER_TRY = 1.0 "),
)

ONE_KEY = variant(
    "orders.py",
    ('"Idempotency-Key": f"order-{order_id}"', '"Idempotency-Key": "shop-checkout"'),
)

SAYS_CONFIRMED = (
    SAVE
    + """

def place_order(conn, inventory_url, order):
    # "Inventory is always up in production."
    return _finish(conn, _save(conn, order), "confirmed")
"""
)

RETRIES_CHECKOUT = (
    SOLUTION["orders.py"]
    .replace(
        "def place_order(conn, inventory_url, order):",
        "def _place_once(conn, inventory_url, order):",
    )
    .replace(
        '        return {"order_id": order_id, "status": "pending"}',
        "        raise",
    )
    + """

def place_order(conn, inventory_url, order):
    for _ in range(2):
        try:
            return _place_once(conn, inventory_url, order)
        except NoAnswer:
            continue
    return {"order_id": None, "status": "pending"}
"""
)

RETRIES_IN_BACKGROUND = (
    """
import json
import threading
import time
import urllib.error
import urllib.request
"""
    + SAVE
    + """

def _ask(inventory_url, order_id, lines, timeout):
    request = urllib.request.Request(
        f"{inventory_url}/reservations",
        data=json.dumps({"order_id": order_id, "lines": lines}).encode(),
        headers={"Content-Type": "application/json", "Idempotency-Key": f"o{order_id}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code
    except Exception:
        return None


def _keep_trying(inventory_url, order_id, lines):
    for _ in range(15):  # "the customer already has an answer: no harm in trying on"
        if _ask(inventory_url, order_id, lines, 0.5) in (201, 409):
            return
        time.sleep(0.02)


def place_order(conn, inventory_url, order):
    order_id = _save(conn, order)
    code = _ask(inventory_url, order_id, order["lines"], 0.5)
    if code in (201, 409):
        return _finish(conn, order_id, "confirmed" if code == 201 else "rejected")
    threading.Thread(
        target=_keep_trying, args=(inventory_url, order_id, order["lines"]), daemon=True
    ).start()
    return _finish(conn, order_id, "pending")
"""
)

HANGS = """
import time

def place_order(conn, inventory_url, order):
    time.sleep(3600)
"""

RETRIES_409 = variant(
    "orders.py",
    (
        "            if error.code == 409:\n                return False",
        "            if False:\n                pass",
    ),
    ("            if error.code < 500:", "            if error.code < 409:"),
)


ASYNCIO_STREAMS = (
    """
import asyncio
import json
from urllib.parse import urlsplit
"""
    + SAVE
    + """

async def _ask(inventory_url, order_id, lines):
    url = urlsplit(inventory_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        body = json.dumps({"order_id": order_id, "lines": lines}).encode()
        writer.write(
            f"POST {url.path}/reservations HTTP/1.1\\r\\nHost: {url.netloc}\\r\\n"
            f"Content-Type: application/json\\r\\nContent-Length: {len(body)}\\r\\n"
            f"Idempotency-Key: order-{order_id}\\r\\nConnection: close\\r\\n\\r\\n".encode()
            + body
        )
        await writer.drain()
        status_line = await reader.readline()
        return int(status_line.split()[1])
    finally:
        writer.close()


async def _reserve(inventory_url, order_id, lines):
    for attempt in range(3):
        try:
            code = await asyncio.wait_for(_ask(inventory_url, order_id, lines), 0.5)
        except (OSError, asyncio.TimeoutError, ValueError, IndexError):
            code = None
        if code in (201, 409):
            return code
        await asyncio.sleep(0.05 * 2**attempt)
    return None


def place_order(conn, inventory_url, order):
    order_id = _save(conn, order)
    try:
        code = asyncio.run(asyncio.wait_for(_reserve(inventory_url, order_id, order["lines"]), 1.3))
    except asyncio.TimeoutError:
        code = None
    return _finish(conn, order_id, {201: "confirmed", 409: "rejected"}.get(code, "pending"))
"""
)

# A deadline from the operating system: SIGALRM interrupts whatever urlopen waits on.
ALARM_DEADLINE = (
    """
import json
import signal
import urllib.error
import urllib.request
"""
    + SAVE
    + """

class Late(Exception):
    pass


def _late(signum, frame):
    raise Late()


def place_order(conn, inventory_url, order):
    order_id = _save(conn, order)
    request = urllib.request.Request(
        f"{inventory_url}/reservations",
        data=json.dumps({"order_id": order_id, "lines": order["lines"]}).encode(),
        headers={"Content-Type": "application/json", "Idempotency-Key": f"o-{order_id}"},
    )
    previous = signal.signal(signal.SIGALRM, _late)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    try:
        with urllib.request.urlopen(request) as reply:
            status = "confirmed" if reply.status == 201 else "pending"
    except urllib.error.HTTPError as error:
        status = "rejected" if error.code == 409 else "pending"
    except (Late, OSError):
        status = "pending"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return _finish(conn, order_id, status)
"""
)

# Correct, if noisy: a flood of debug output, more keys in the answer, a hashed key.
CHATTY_HASHED_KEY = variant(
    "orders.py",
    ("import json\n", "import hashlib\nimport json\n"),
    (
        '        "Idempotency-Key": f"order-{order_id}",\n',
        '        "Idempotency-Key": hashlib.sha256(b"%d" % order_id).hexdigest(),\n',
    ),
    (
        '    return {"order_id": order_id, "status": status}',
        '    print("debug " * 40000)\n'
        '    return {"order_id": order_id, "status": status, "checked_at": time.time()}',
    ),
)

FIVE_XX_IS_NO = variant(
    "orders.py",
    ("            if error.code == 409:", "            if error.code >= 409:"),
)

# Lies about the clock: with time.monotonic stopped, its own deadline never comes, and the
# runner's clock, outside the learner's process, is the one that counts.
FROZEN_CLOCK = variant(
    "orders.py",
    ("DEADLINE = 1.2 ", "time.monotonic = lambda: 0.0\nDEADLINE = 1.2 "),
    ("timeout=min(PER_TRY, left)", "timeout=None"),
)

FORKS_TO_RETRY = (
    """
import json
import os
import time
import urllib.error
import urllib.request
"""
    + SAVE
    + """

def _ask(inventory_url, order_id, lines):
    request = urllib.request.Request(
        f"{inventory_url}/reservations",
        data=json.dumps({"order_id": order_id, "lines": lines}).encode(),
        headers={"Content-Type": "application/json", "Idempotency-Key": f"o{order_id}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=0.5) as reply:
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code
    except Exception:
        return None


def place_order(conn, inventory_url, order):
    order_id = _save(conn, order)
    code = _ask(inventory_url, order_id, order["lines"])
    if code in (201, 409):
        return _finish(conn, order_id, "confirmed" if code == 201 else "rejected")
    if os.fork() == 0:  # a helper process keeps asking until inventory says yes or no
        while _ask(inventory_url, order_id, order["lines"]) not in (201, 409):
            time.sleep(0.01)
        os._exit(0)
    return _finish(conn, order_id, "pending")
"""
)

BROKEN_IMPORT = SOLUTION["orders.py"].replace(
    "import json\n", "import json\nimport inventory_client\n"
)

CORRECT: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "grants-per-table": (
        ("tables-moved", "modules-can-work", "no-cross-module-access"),
        {"boundaries.sql": GRANTS_PER_TABLE},
    ),
    "copied-into-new-tables": (
        ("tables-moved", "modules-can-work", "no-cross-module-access"),
        {"boundaries.sql": COPIED},
    ),
    "view-with-the-readers-rights": (
        ("no-cross-module-access",),
        {"boundaries.sql": INVOKER_VIEW},
    ),
    "with-requests": (ORDER_CHECKS, {"orders.py": WITH_REQUESTS}),
    "one-try-http-client": (ORDER_CHECKS, {"orders.py": ONE_TRY_HTTP_CLIENT}),
    "executor-deadline": (ORDER_CHECKS, {"orders.py": EXECUTOR_DEADLINE}),
    "uuid-key": (ORDER_CHECKS, {"orders.py": UUID_KEY}),
    "asyncio-streams": (ORDER_CHECKS, {"orders.py": ASYNCIO_STREAMS}),
    "alarm-deadline": (ORDER_CHECKS, {"orders.py": ALARM_DEADLINE}),
    "chatty-hashed-key": (ORDER_CHECKS, {"orders.py": CHATTY_HASHED_KEY}),
    "invoker-function-and-own-defaults": (
        ("no-cross-module-access",),
        {"boundaries.sql": INVOKER_FUNCTION_AND_OWN_DEFAULTS},
    ),
}

WRONG: dict[str, tuple[str, dict[str, str], str]] = {
    "foreign-key-kept": (
        "tables-moved",
        {"boundaries.sql": FK_KEPT},
        "orders.order_lines.sku references inventory.products",
    ),
    "view-over-their-stock": (
        "no-cross-module-access",
        {"boundaries.sql": STOCK_VIEW},
        "orders may SELECT inventory.stock (through the view orders.stock_levels",
    ),
    "rejected-on-timeout": (
        "degrades-in-time",
        {"orders.py": REJECTED_ON_TIMEOUT},
        "Inventory never said no",
    ),
    "timeout-too-tight": (
        "healthy-reserves",
        {"orders.py": TOO_TIGHT},
        "shorter than its normal answers",
    ),
    "attempts-past-the-budget": (
        "degrades-in-time",
        {"orders.py": PAST_THE_BUDGET},
        "place_order took",
    ),
    "one-key-for-all": ("healthy-reserves", {"orders.py": ONE_KEY}, "already been used by order"),
    "says-confirmed": ("healthy-reserves", {"orders.py": SAYS_CONFIRMED}, "saw no request"),
    "retries-the-checkout": (
        "retries-bounded",
        {"orders.py": RETRIES_CHECKOUT},
        "orders saved for checkout",
    ),
    "retries-in-background": (
        "retries-bounded",
        {"orders.py": RETRIES_IN_BACKGROUND},
        "requests for order",
    ),
    "hangs": ("healthy-reserves", {"orders.py": HANGS}, "still waiting after 4 s"),
    "retries-a-409": ("retries-bounded", {"orders.py": RETRIES_409}, "after a 409"),
    "5xx-is-a-no": ("degrades-in-time", {"orders.py": FIVE_XX_IS_NO}, "Inventory never said no"),
    "frozen-clock": (
        "degrades-in-time",
        {"orders.py": FROZEN_CLOCK},
        "place_order was still waiting after 4 s",
    ),
    "forks-to-retry": ("retries-bounded", {"orders.py": FORKS_TO_RETRY}, "requests for order"),
    "does-not-import": (
        "healthy-reserves",
        {"orders.py": BROKEN_IMPORT},
        "orders.py does not import: ModuleNotFoundError",
    ),
    "definer-function": (
        "no-cross-module-access",
        {"boundaries.sql": DEFINER_FUNCTION},
        "orders may EXECUTE function public.stock_of(wanted text) (SECURITY DEFINER",
    ),
    "definer-trigger": (
        "no-cross-module-access",
        {"boundaries.sql": DEFINER_TRIGGER},
        "orders may fire function orders.hold_stock() (a trigger on orders.order_lines",
    ),
    "rule-across": (
        "no-cross-module-access",
        {"boundaries.sql": STOCK_RULE},
        "orders may write inventory.stock (through the rule hold_stock",
    ),
    "default-privileges-across": (
        "no-cross-module-access",
        {"boundaries.sql": DEFAULTS_ACROSS},
        "orders may SELECT any table made in schema inventory from now on",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CORRECT))
def test_other_correct_answers_pass(name: str, shop: Shop) -> None:
    check_ids, files = CORRECT[name]
    results = judge(shop, check_ids, files)
    assert [r.id for r in results] == list(check_ids)
    for result in results:
        assert result.passed, f"{result.id}: {result.message}"


@pytest.mark.slow
@pytest.mark.parametrize("name", list(WRONG))
def test_other_wrong_answers_fail_and_say_why(name: str, shop: Shop) -> None:
    check_id, files, phrase = WRONG[name]
    [result] = judge(shop, (check_id,), files)
    assert not result.passed, result.message
    assert phrase in result.message, result.message


@pytest.mark.slow
def test_a_membership_is_a_route(shop: Shop) -> None:
    """The lab's login cannot hand out membership, but a DBA can: made a member of the
    tables' owner, the orders role holds everything, and the check says by which route."""
    [result] = judge(
        shop,
        ("no-cross-module-access",),
        {},
        admin='GRANT "{login}" TO "{login}_orders"',
    )
    assert not result.passed, result.message
    assert "through membership in" in result.message, result.message
