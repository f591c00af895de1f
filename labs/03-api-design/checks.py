"""Checks for the API design lab: an orders API that clients can trust.

Every check drives the learner's own HTTP service (`app.py`, started through the runner
behind a proxy that counts the statements PostgreSQL receives) the way a client would,
and judges what came back against what the database holds: rows counted in PostgreSQL,
not the service's word. The service is started once per `lab check` (`ctx.once`) and
shared by the checks; the idempotency check starts a second process of it, as a load
balancer would.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urljoin, urlsplit

from sdtutor.errors import LabError
from sdtutor.lab.checks import CheckContext, Evidence, Fail, Pass, check

APP = ["app.py"]
READY = ("http", "/health")
PAGE = 25  # the page size the walk asks for
MAX_LIMIT = 100  # the most items one page may hold, whatever limit asks
RACERS = 10  # retries of one POST released together
RACE_LATENCY = 0.05  # seconds the proxy holds each message to PostgreSQL during the race
LISTED = 50  # orders in the list whose statements are counted
MAX_STATEMENTS = 8  # statements one list request may cost, however many orders it holds
SECRETS = ("password_hash", "internal_note")
PROBLEM = "application/problem+json"
MAX_BODY = 1_000_000  # bytes of one answer the checker reads at most


# ------------------------------------------------------------------ HTTP, as a client would


@dataclass
class Reply:
    """One HTTP answer (status 0: no answer at all, `error` says why)."""

    status: int
    headers: dict[str, str]
    text: str = ""
    body: Any = None
    error: str = ""

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    def media_type(self) -> str:
        return self.header("content-type").split(";")[0].strip().lower()

    def show(self, width: int = 90) -> str:
        """How the answer reads in a message."""
        if self.status == 0:
            return f"no answer ({self.error})"
        text = " ".join(self.text.split())
        text = text if len(text) <= width else text[: width - 3] + "..."
        return f"{self.status} {self.media_type() or '(no Content-Type)'} {text}".rstrip()


def _request(
    base: str,
    method: str,
    target: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
    timeout: float = 5.0,
) -> Reply:
    """Send one request to the service at `base` (target: a path, or a URL on it).

    The answer is read within `timeout` seconds a read and twice that in all, and at most
    MAX_BODY bytes of it: a service that streams without end or drips one byte at a time
    gets "no answer", not the checker's memory or the whole deadline of the check.
    """
    url = urlsplit(urljoin(base + "/", target))
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=timeout)
    sent = {"Connection": "close", **(headers or {})}
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
    if data is not None:
        sent.setdefault("Content-Type", "application/json")
    deadline = time.monotonic() + 2 * timeout
    chunks: list[bytes] = []
    try:
        conn.request(method, _path(url.geturl()), body=data, headers=sent)
        response = conn.getresponse()
        got = {k.lower(): v for k, v in response.getheaders()}
        size = 0
        while chunk := response.read1(65536):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_BODY:
                return Reply(0, got, error=f"the answer went on past {MAX_BODY // 1000} kB")
            if time.monotonic() > deadline:
                return Reply(0, got, error=f"the answer took over {2 * timeout:g} s to arrive")
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return Reply(0, {}, error=f"{type(exc).__name__}: {exc}".rstrip(": "))
    finally:
        conn.close()
    text = b"".join(chunks).decode(errors="replace")
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        parsed = None
    return Reply(response.status, got, text, parsed)


def _on_service(base: str, url: str) -> bool:
    """Whether the absolute `url` points back at the service at `base`."""
    try:
        there, here = urlsplit(url), urlsplit(base)
        port = there.port
    except ValueError:
        return False
    hosts = {here.hostname, "127.0.0.1", "localhost"}
    return there.scheme == "http" and there.hostname in hosts and port == here.port


def _resolve(base: str, link: Any) -> str:
    """`link` resolved against the URL `base`, as a client does ('' if it cannot be)."""
    if not isinstance(link, str):
        return ""
    try:
        return urljoin(base, link)
    except ValueError:
        return ""


def _path(url: str) -> str:
    """A URL on the service as a request line and a message show it: path and query."""
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _problem_issue(reply: Reply, status: int) -> str:
    """What keeps `reply` from being an RFC 9457 problem for `status` ('' if nothing)."""
    if reply.media_type() != PROBLEM:
        got = reply.media_type() or "no Content-Type"
        return f"Content-Type is {got}, not {PROBLEM}"
    if not isinstance(reply.body, dict):
        return "the body is not a JSON object"
    missing = [m for m in ("type", "title", "detail") if not isinstance(reply.body.get(m), str)]
    if missing:
        return f"the problem has no {', '.join(missing)} (strings)"
    if reply.body.get("status") != status:
        return f'its "status" is {json.dumps(reply.body.get("status"))}, not {status}'
    return ""


# ------------------------------------------------------------------ the service, shared


@dataclass
class App:
    """The learner's service (one per `lab check`) and the proxy that counts its SQL."""

    service: Any
    proxy: Any

    @property
    def url(self) -> str:
        return str(self.service.url)

    def logs(self) -> Evidence:
        return Evidence("your service's output", "text", self.service.logs()[-3000:] or "(none)")


def _start(ctx: CheckContext, proxy: Any) -> Any:
    try:
        return ctx.service(APP, ready=READY, proxies={"postgres": proxy})
    except LabError as exc:
        raise Fail(
            f"Your app.py did not start and answer GET /health: {exc.message}",
            Evidence("what it said", "text", exc.hint or "(nothing)"),
        ) from None


def _app(ctx: CheckContext) -> App:
    """The service for this `lab check`: started by the first check that asks (a start
    that fails fails every check the same way), and again if an earlier check left it dead."""

    def make() -> App:
        proxy = ctx.proxy("postgres")
        return App(_start(ctx, proxy), proxy)

    app = ctx.once("app", make)
    if not app.service.alive():
        app.service = _start(ctx, app.proxy)
    return app


def _count_orders(ctx: CheckContext) -> int:
    return int(ctx.value("SELECT count(*) FROM orders"))


def _table(title: str, rows: list[tuple[str, str, str]]) -> Evidence:
    return Evidence(title, "table", (("request", "expected", "got"), rows))


def _amount(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


# ------------------------------------------------------------------ task 1: status codes


INVALID: list[tuple[str, Any]] = [
    ("no total", {"customer_id": 1}),
    ("a negative total", {"customer_id": 1, "total": "-5.00"}),
    ("a total that is not a number", {"customer_id": 1, "total": "lots"}),
    ("a customer that does not exist", {"customer_id": 999999, "total": "10.00"}),
]


@check("status-codes")
def status_codes(ctx: CheckContext) -> Pass:
    app = _app(ctx)
    rows: list[tuple[str, str, str]] = []
    problems: list[str] = []
    evidence = lambda: _table("what your API answered", rows)  # noqa: E731

    customer = int(ctx.value("SELECT min(id) FROM customers"))
    top = int(ctx.value("SELECT coalesce(max(id), 0) FROM orders"))
    created = _request(app.url, "POST", "/orders", {"customer_id": customer, "total": "19.90"})
    new = [r[0] for r in ctx.query("SELECT id FROM orders WHERE id > %s ORDER BY id", (top,))]
    rows.append(("POST /orders (a valid order)", "201 + Location", created.show(60)))
    if created.status == 0:
        raise Fail(
            f"POST /orders with a valid order got {created.show()}. Look at your service's "
            "output for the error.",
            evidence(),
            app.logs(),
        )
    if len(new) != 1:
        unsaved = (
            " (an insert not committed when the answer goes out is not there for the "
            "client: use an autocommit connection, or commit before you answer)"
            if not new and 200 <= created.status < 300
            else ""
        )
        raise Fail(
            f"POST /orders with a valid order answered {created.status}, and PostgreSQL now "
            f"holds {len(new)} new orders: it should hold exactly one{unsaved}.",
            evidence(),
        )
    location = created.header("location")
    if created.status != 201 or not location:
        got = f"{created.status}" + (" with a Location header" if location else " and no Location")
        raise Fail(
            f"POST /orders created order {new[0]} but answered {got}. A create answers "
            "201 Created with a Location header naming the new resource (/orders/"
            f"{new[0]}): clients and proxies read the status, not the body, to know "
            "something new exists and where.",
            evidence(),
        )
    # A relative Location is resolved against the request's URL, as a client does.
    target = _resolve(app.url + "/orders", location)
    fetched = _request(app.url, "GET", target) if _on_service(app.url, target) else None
    rows.append((f"GET {location}", f"200, order {new[0]}", fetched.show(60) if fetched else "-"))
    fetched_id = fetched.body.get("id") if fetched and isinstance(fetched.body, dict) else None
    if fetched is None or fetched.status != 200 or str(fetched_id) != str(new[0]):
        raise Fail(
            f"The Location header of the new order {new[0]} is {location!r}; a GET of it "
            f"should answer 200 with that order, but got "
            f"{fetched.show() if fetched else 'nothing (it points elsewhere)'}.",
            evidence(),
        )

    missing = top + 100000
    checks: list[tuple[str, str, str, Any, int | tuple[int, ...]]] = [
        (f"GET /orders/{missing} (no such order)", "GET", f"/orders/{missing}", None, 404),
    ]
    # The warehouse ships the new order (the checker writes it, as another system would):
    # whatever earlier runs cancelled, there is always a shipped order to try.
    shipped = new[0]
    ctx.query("UPDATE orders SET status = 'shipped' WHERE id = %s RETURNING id", (shipped,))
    pending = ctx.value("SELECT min(id) FROM orders WHERE status IN ('pending', 'paid')")
    if pending is None:
        pending = ctx.value(
            "INSERT INTO orders (customer_id, total) VALUES (%s, 1.00) RETURNING id", (customer,)
        )
    checks.append(
        (f"POST /orders/{shipped}/cancel (shipped)", "POST", f"/orders/{shipped}/cancel", None, 409)
    )
    for what, body in INVALID:
        checks.append((f"POST /orders with {what}", "POST", "/orders", body, 422))
    for what, method, target, body, want in checks:
        before = _count_orders(ctx)
        reply = _request(app.url, method, target, body)
        issue = _problem_issue(reply, reply.status) if reply.status == want else ""
        rows.append((what, f"{want} {PROBLEM}", reply.show(60)))
        if reply.status != want:
            problems.append(f"{what} got {reply.show(50)}, not {want}")
        elif issue:
            problems.append(f"{what} answered {want}, but {issue}")
        if method == "POST" and target == "/orders" and _count_orders(ctx) != before:
            problems.append(f"{what} created an order anyway")
    garbled = _request(app.url, "POST", "/orders", raw=b'{"customer_id": 1, "total": ')
    rows.append(("POST /orders with broken JSON", f"400 or 422 {PROBLEM}", garbled.show(60)))
    if garbled.status not in (400, 422):
        problems.append(f"POST /orders with broken JSON got {garbled.show(50)}, not 400")
    elif issue := _problem_issue(garbled, garbled.status):
        problems.append(f"POST /orders with broken JSON answered {garbled.status}, but {issue}")
    still = ctx.value("SELECT status FROM orders WHERE id = %s", (shipped,))
    if still != "shipped":
        problems.append(f"cancelling shipped order {shipped} changed its status to {still}")
    cancel = _request(app.url, "POST", f"/orders/{pending}/cancel")
    rows.append((f"POST /orders/{pending}/cancel (not shipped)", "200", cancel.show(60)))
    status = ctx.value("SELECT status FROM orders WHERE id = %s", (pending,))
    if cancel.status != 200 or status != "cancelled":
        problems.append(
            f"cancelling order {pending}, which has not shipped, got {cancel.show(40)} "
            f"and left it {status}"
        )
    if problems:
        raise Fail(
            f"{len(problems)} answer(s) would mislead a client: {'; '.join(problems[:3])}"
            + ("; ..." if len(problems) > 3 else ".")
            + " Say what happened in the status code: 404 for what does not exist, 409 for "
            "a request that conflicts with the resource's state, 422 for a well-formed "
            f"body that is invalid, and every error as {PROBLEM} (RFC 9457) with type, "
            "title, status and detail, so a client can react without parsing your prose.",
            evidence(),
        )
    return Pass(
        "201 with a Location that finds the new order; 404, 409 and 422 answered as RFC 9457 "
        "problems; invalid orders create nothing.",
        evidence(),
    )


# ------------------------------------------------------------------ task 2: pagination


@dataclass
class Walk:
    """One walk of the pages, from the first to the one with no next link."""

    born: dict[int, Any]  # every order the walk knows of, and its created_at
    throughout: set[int]  # the orders that existed from its start to its end
    seen: list[int]
    ends: list[int]  # the last order of each page
    pages: int = 0
    inserted: int = 0
    deleted: int = 0

    def repeated(self) -> list[int]:
        return sorted(i for i, n in Counter(self.seen).items() if n > 1)

    def skipped(self) -> list[int]:
        return sorted(self.throughout - set(self.seen))

    def evidence(self) -> Evidence:
        return Evidence(
            "the walk",
            "table",
            (
                ("", "orders"),
                [
                    ("shown twice", _ids(self.repeated())),
                    ("never shown", _ids(self.skipped())),
                    ("last on each page", _ids(self.ends)),
                ],
            ),
        )


@dataclass
class Changes:
    """What a walk wrote to the table, so that the check can take it back."""

    added: list[int] = field(default_factory=list)
    removed: list[tuple[list[str], tuple[Any, ...]]] = field(default_factory=list)

    def delete(self, ctx: CheckContext, order: int) -> bool:
        """Delete an order as another client would; False if the learner's own schema
        holds on to it (a foreign key from their table of idempotency keys, say)."""
        from psycopg import Error

        try:
            with ctx.pg().cursor() as cur:
                cur.execute("DELETE FROM orders WHERE id = %s RETURNING *", (order,))
                row = cur.fetchone()
                if row is None or not cur.description:
                    return False
                self.removed.append(([d.name for d in cur.description], tuple(row)))
                return True
        except Error:
            return False

    def undo(self, ctx: CheckContext) -> None:
        """Put the table back as it was (repeated checks must not wear the data away)."""
        from psycopg import Error, sql

        with contextlib.suppress(Error):
            conn = ctx.pg()
            conn.execute("DELETE FROM orders WHERE id = ANY(%s)", (self.added,))
            for columns, row in self.removed:
                conn.execute(
                    sql.SQL("INSERT INTO orders ({}) VALUES ({}) ON CONFLICT DO NOTHING").format(
                        sql.SQL(", ").join(map(sql.Identifier, columns)),
                        sql.SQL(", ").join(sql.Placeholder() * len(columns)),
                    ),
                    row,
                )


def _walk(ctx: CheckContext, app: App, changes: Changes | None) -> Walk:
    """Follow the next links from /orders?limit=PAGE; with `changes`, write to the table
    between page fetches as other clients would, and note what was written."""
    born = {int(i): c for i, c in ctx.query("SELECT id, created_at FROM orders")}
    walk = Walk(born, set(born), [], [])
    total = len(born)
    url = f"{app.url}/orders?limit={PAGE}"
    most = total // PAGE + 10  # the pages it takes, with room for what is added
    while True:
        walk.pages += 1
        if walk.pages > most:
            raise Fail(
                f"The walk followed {most} next links and had not reached the end of "
                f"{total} orders at {PAGE} a page: the next link loops.",
                walk.evidence(),
            )
        target = _path(url)
        reply = _request(app.url, "GET", url)
        items = reply.body.get("items") if isinstance(reply.body, dict) else None
        if reply.status != 200 or not isinstance(items, list):
            raise Fail(
                f"GET {target} got {reply.show()}; a page should be 200 with "
                '{"items": [...], "next": "<link to the next page, or null>"}.',
                app.logs(),
            )
        ids: list[int] = [i["id"] for i in items if isinstance(i, dict) and _is_id(i.get("id"))]
        if len(ids) != len(items):
            raise Fail(
                f"GET {target}: every item should carry the order's id (a number); "
                f"got {reply.show()}.",
            )
        if len(items) > PAGE:
            raise Fail(
                f"GET {target} gave {len(items)} items: more than the limit of {PAGE} the "
                "walk asked for (a next link keeps the client's limit)."
            )
        walk.seen += ids
        walk.ends += ids[-1:]
        link = reply.body.get("next")
        if not link:
            return walk
        # A relative link is resolved against the page it came in, as a client does.
        url = _resolve(url, link)
        if not _on_service(app.url, url):
            raise Fail(
                f"GET {target}: the next link {json.dumps(link)[:120]} is not a URL on this "
                "service: give a link the client can follow as it is (/orders?...)."
            )
        if changes is None:
            continue
        # Meanwhile, other clients write: new orders, a back-dated import, a deletion.
        added = ctx.query(
            "INSERT INTO orders (customer_id, total, created_at)"
            " VALUES (1, 1.00, now()), (2, 2.00, now()),"
            " (3, 3.00, timestamptz '2020-01-01' + %s * interval '1 second')"
            " RETURNING id, created_at",
            (walk.pages,),
        )
        born.update((int(i), c) for i, c in added)
        changes.added += [int(i) for i, _ in added]
        walk.inserted += len(added)
        victim = next(
            (i for i in ids[:-1] if i in walk.throughout and changes.delete(ctx, i)), None
        )
        if victim is not None:
            walk.throughout.discard(victim)
            walk.deleted += 1


@check("pagination")
def pagination(ctx: CheckContext) -> Pass:
    app = _app(ctx)
    changes = Changes()
    try:
        return _judge_pages(ctx, app, changes)
    finally:
        changes.undo(ctx)


def _judge_pages(ctx: CheckContext, app: App, changes: Changes) -> Pass:
    walk = _walk(ctx, app, changes)
    repeated, skipped = walk.repeated(), walk.skipped()
    walked = (
        f"Walked {walk.pages} pages of {PAGE} while adding {walk.inserted} orders and "
        f"deleting {walk.deleted} already seen, between page fetches: {len(walk.seen)} items, "
        f"{len(repeated)} orders shown twice, {len(skipped)} of the {len(walk.throughout)} "
        "orders that existed throughout never shown."
    )
    if repeated or skipped:
        quiet = _walk(ctx, app, None)
        if quiet.repeated() or quiet.skipped():
            raise Fail(f"{walked} {_quiet_fault(quiet)}", walk.evidence(), quiet.evidence())
        raise Fail(
            f"{walked} A second walk with nobody writing was fine, so the pages are found "
            "by position (OFFSET, a page number): orders added or removed in front of the "
            "reader shift every position after them, and the next page repeats or skips "
            "rows. Continue after the last order the client saw (a cursor that names it), "
            "not after a count.",
            walk.evidence(),
        )
    order = [(i, walk.born[i]) for i in walk.seen if i in walk.born]
    back = next((k for k in range(1, len(order)) if order[k][1] > order[k - 1][1]), None)
    if back is not None:
        (early, then), (late, now) = order[back - 1], order[back]
        raise Fail(
            f"{walked} But the orders are not newest first: order {late} "
            f"({now:%Y-%m-%d %H:%M:%S}) comes after order {early} "
            f"({then:%Y-%m-%d %H:%M:%S}). List them by created_at, newest first.",
            walk.evidence(),
        )
    big = _request(app.url, "GET", "/orders?limit=100000")
    many = big.body.get("items") if isinstance(big.body, dict) else None
    if big.status == 200 and isinstance(many, list) and len(many) > MAX_LIMIT:
        raise Fail(
            f"{walked} But GET /orders?limit=100000 returned {len(many)} orders in one page. "
            f"Cap the page size (at most {MAX_LIMIT}): a list that grows for a year must "
            "not answer with all of it.",
            walk.evidence(),
        )
    return Pass(f"{walked} The cursor holds its place.", walk.evidence())


def _quiet_fault(quiet: Walk) -> str:
    """Why a walk with nobody writing repeated or skipped orders, from where it went wrong."""
    repeated, skipped = quiet.repeated(), quiet.skipped()
    ends = set(quiet.ends)
    stamps = {quiet.born[i] for i in ends if i in quiet.born}
    # Orders other than a page's last that share its created_at: a cursor on the time alone.
    tied = [i for i in repeated + skipped if i not in ends and quiet.born.get(i) in stamps]
    if tied:
        stamp = quiet.born[tied[0]]
        group = sum(1 for c in quiet.born.values() if c == stamp)
        return (
            f"Even with nobody writing, a second walk went wrong: order {tied[0]} was "
            + ("shown twice" if tied[0] in repeated else "never shown")
            + f", and {group} orders share its created_at ({stamp:%Y-%m-%d %H:%M:%S}) with "
            "the last order of a page. A cursor that holds only the timestamp cannot tell "
            "where in such a group the page stopped. Make the cursor unique: order by "
            "created_at and then id, and continue after both."
        )
    if repeated and not skipped and set(repeated) <= ends:
        return (
            f"Even with nobody writing, a second walk showed the last order of a page again "
            f"at the top of the next (order {repeated[0]}): the next page should start "
            "strictly after the cursor (<, not <=)."
        )
    first = (repeated + skipped)[0]
    return (
        f"Even with nobody writing, a second walk went wrong: order {first} was "
        + ("shown twice" if first in repeated else "never shown")
        + ". Each page must continue exactly after the last order of the page before, in "
        "the same order the first page used: compare your cursor's condition with your "
        "ORDER BY."
    )


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _ids(ids: list[int], shown: int = 12) -> str:
    if not ids:
        return "none"
    more = f" ... ({len(ids)} in all)" if len(ids) > shown else ""
    return ", ".join(str(i) for i in ids[:shown]) + more


# ------------------------------------------------------------------ task 3: idempotency


def _post(url: str, key: str, body: dict[str, Any], timeout: float = 5.0) -> Reply:
    return _request(url, "POST", "/orders", body, {"Idempotency-Key": key}, timeout=timeout)


def _race(urls: list[str], key: str, body: dict[str, Any]) -> list[Reply]:
    """RACERS identical POSTs released together, spread over the service's processes."""
    gate = threading.Barrier(RACERS)
    replies: list[Reply] = [Reply(0, {}, error="not sent")] * RACERS

    def one(i: int) -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            gate.wait(10)
        replies[i] = _post(urls[i % len(urls)], key, body, timeout=15)

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return replies


def _same(a: Reply, b: Reply) -> bool:
    return (a.status, a.body, a.header("location")) == (b.status, b.body, b.header("location"))


def _difference(first: Reply, then: Reply) -> str:
    """How a replay differs from the first answer, as a message says it."""
    if then.status == 0 or then.status != first.status:
        shown = then.show(60) if then.status == 0 else str(then.status)
        return f"{shown} where the first answer was {first.status}"
    if then.body != first.body:
        return f"a body that is not the first one ({then.show(60)})"
    if then.header("location") != first.header("location"):
        got = then.header("location") or "none"
        return f"Location {got} where the first was {first.header('location') or 'none'}"
    return "the same answer"


@check("idempotency")
def idempotency(ctx: CheckContext) -> Pass:
    app = _app(ctx)
    customer = int(ctx.value("SELECT max(id) FROM customers"))
    body = {"customer_id": customer, "total": "41.07"}
    key = f"checker-{uuid.uuid4()}"
    rows: list[tuple[str, str, str]] = []
    evidence = lambda: _table("what your API answered", rows)  # noqa: E731

    before = _count_orders(ctx)
    first = _post(app.url, key, body)
    rows.append(("POST /orders, Idempotency-Key K1", "201", first.show(60)))
    if not 200 <= first.status < 300 or _count_orders(ctx) != before + 1:
        raise Fail(
            f"POST /orders with an Idempotency-Key got {first.show()} and created "
            f"{_count_orders(ctx) - before} orders; it should create one and answer 201 "
            "(the status-codes check says more).",
            evidence(),
        )
    again = _post(app.url, key, body)
    rows.append(("the same again", "the same answer, no new order", again.show(60)))
    made = _count_orders(ctx) - before
    if made != 1 or not _same(first, again):
        what = (
            f"created another order (PostgreSQL now holds {made} new orders)"
            if made > 1
            else f"got {_difference(first, again)}"
        )
        raise Fail(
            f"The same POST /orders sent again with the same Idempotency-Key {what}. A "
            "client that timed out cannot know whether its order went through: it retries "
            "with the same key, and must get the first answer back (the same status, body "
            "and Location) with no second order. Store each key with the answer it got.",
            evidence(),
        )
    second = _start(ctx, app.proxy)
    try:
        elsewhere = _post(second.url, key, body)
        rows.append(("the same, to a second process", "the same answer", elsewhere.show(60)))
        made = _count_orders(ctx) - before
        if made != 1 or not _same(first, elsewhere):
            why = (
                "The key lives in one process's memory: keep it where every process sees "
                "it, and where it survives a restart (in PostgreSQL, beside the order)."
                if made > 1
                else "Every process must replay the first answer as it was given."
            )
            raise Fail(
                "The retry went to a second process of your app (as it would behind a load "
                f"balancer, or after a restart) and got {_difference(first, elsewhere)}; "
                f"PostgreSQL now holds {made} new order(s). {why}",
                evidence(),
            )

        race_key = f"checker-{uuid.uuid4()}"
        raced = dict(body, total="58.12")
        before = _count_orders(ctx)
        app.proxy.latency = RACE_LATENCY  # a real database takes a moment: so does this one
        try:
            replies = _race([app.url, str(second.url)], race_key, raced)
        finally:
            app.proxy.latency = 0.0
        made = _count_orders(ctx) - before
        created = [r for r in replies if 200 <= r.status < 300]
        busy = [r for r in replies if r.status == 409]
        tally = Counter(r.status for r in replies)
        summary = ", ".join(f"{n} x {s or 'no answer'}" for s, n in sorted(tally.items()))
        rows.append((f"{RACERS} at once with key K2, over two processes", "one order", summary))
        answers = {
            (r.status, json.dumps(r.body, sort_keys=True), r.header("location")) for r in created
        }
        raced_text = (
            f"{RACERS} identical POST /orders with one Idempotency-Key, sent at once to two "
            f"processes of your app, created {made} order(s) (answers: {summary})."
        )
        if made > 1:
            raise Fail(
                f"{raced_text} Looking the key up and then inserting leaves a gap in which "
                "every retry finds nothing and goes on to create its own order. Make the "
                "claim on the key and the insert one atomic step that PostgreSQL arbitrates "
                "(a unique key inserted in the order's transaction, so the losers wait for "
                "it and then read the stored answer); a retry that finds the first still "
                "running may also get 409.",
                evidence(),
            )
        if made == 0 or not created:
            raise Fail(
                f"{raced_text} One of them should have created the order and answered "
                "201, and the others replayed that answer (or said 409, still running). "
                "Look at your service's output for the error.",
                evidence(),
                app.logs(),
            )
        if len(created) + len(busy) != RACERS:
            raise Fail(
                f"{raced_text} The order exists once, but "
                f"{RACERS - len(created) - len(busy)} retries got neither its answer nor a "
                "409: a retry that loses the race is not an error. When the key turns out "
                "to be taken (a unique violation, a conflict), read the stored answer and "
                "replay it, or answer 409 while the first is still running.",
                evidence(),
                app.logs(),
            )
        if len(answers) > 1:
            raise Fail(
                f"{raced_text} The order exists once, but the successful answers differ "
                "(status, body or Location): every retry with the key should get the one "
                "answer the first request got.",
                evidence(),
            )
        late = _post(app.url, race_key, raced)
        rows.append(("K2 once more, after the race", "the stored answer", late.show(60)))
        if not _same(late, created[0]):
            raise Fail(
                f"After the race, the same request with its key got "
                f"{_difference(created[0], late)}: every retry with the key should get the "
                "one answer the first request got.",
                evidence(),
            )
    finally:
        second.stop()

    before = _count_orders(ctx)
    other = _post(app.url, key, dict(body, total="99.00"))
    made = _count_orders(ctx) - before
    rows.append(("K1 with a different total", "409 or 422, no new order", other.show(60)))
    if other.status not in (400, 409, 422) or made:
        raise Fail(
            f"Key K1, first used for a total of 41.07, was sent again with a different body "
            f"(total 99.00) and got {other.show()}"
            + (f", creating {made} order(s)" if made else "")
            + ". Replaying the first answer tells the client its new order exists when it "
            "does not; creating one breaks the key's promise. Remember what each key was "
            "used for (a hash of the body) and answer a mismatch with 409 or 422.",
            evidence(),
        )
    return Pass(
        f"A retried POST replays the first answer, also on a second process; {RACERS} racing "
        "retries create one order; a key reused with another body is refused.",
        evidence(),
    )


# ------------------------------------------------------------------ task 4: field selection


def _keys(value: Any) -> Iterator[str]:
    """Every member name in a parsed JSON document, however deep."""
    if isinstance(value, dict):
        for name, inner in value.items():
            yield str(name)
            yield from _keys(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _keys(inner)


def _leaks(reply: Reply, values: set[str]) -> str:
    """The first secret `reply` shows ('' if none): a member named for a secret column
    (customer.password_hash too), or a secret value anywhere in the text. A secret's name
    as a string (a 422 that names the refused field) is not a leak."""
    for name in _keys(reply.body):
        if name.rsplit(".", 1)[-1] in SECRETS:
            return name
    for value in values:
        if value in reply.text:
            return value
    return ""


@check("field-selection")
def field_selection(ctx: CheckContext) -> Pass:
    app = _app(ctx)
    values = {str(v) for (v,) in ctx.query("SELECT password_hash FROM customers")}
    values |= {
        str(v)
        for (v,) in ctx.query("SELECT internal_note FROM orders WHERE internal_note IS NOT NULL")
    }
    names = {int(i): n for i, n in ctx.query("SELECT id, name FROM customers")}
    facts = {
        int(i): (int(c), Decimal(t))
        for i, c, t in ctx.query("SELECT id, customer_id, total FROM orders")
    }
    rows: list[tuple[str, str, str]] = []
    evidence = lambda: _table("what your API answered", rows)  # noqa: E731

    def fetch(target: str, method: str = "GET") -> tuple[Reply, int, list[str]]:
        before = app.proxy.stats.snapshot()
        reply = _request(app.url, method, target)
        sent = app.proxy.stats.since(before)
        return reply, sent.statement_count, list(sent.statements)

    sample = min(facts)
    requests = [
        ("GET", f"/orders?limit={LISTED}"),
        ("GET", f"/orders/{sample}"),
        ("GET", "/orders?limit=5&fields=id,customer.password_hash"),
        ("GET", "/orders?limit=5&fields=id,internal_note"),
    ]
    # Cancelling an order that is already cancelled changes nothing, and its answer is
    # an order too: one built from UPDATE ... RETURNING * shows the staff's note.
    noted = ctx.value(
        "SELECT min(id) FROM orders WHERE status = 'cancelled' AND internal_note IS NOT NULL"
    )
    if noted is not None:
        requests.append(("POST", f"/orders/{noted}/cancel"))
    for method, target in requests:
        reply, _, _ = fetch(target, method)
        leak = _leaks(reply, values)
        rows.append((f"{method} {target}", "no secret", reply.show(60)))
        if leak:
            raise Fail(
                f"{method} {target} showed {leak!r}"
                + ("" if leak.rsplit(".", 1)[-1] in SECRETS else " (a secret column's value)")
                + f". {', '.join(SECRETS)} are for the server's eyes only: a response built "
                "from SELECT *, or one that gives out any column a client names, hands them "
                "to every client. Build responses from a list of public fields, and refuse "
                "(or drop) a field that is not on it.",
                evidence(),
            )

    wanted = "id,total,customer.name"
    _, small_count, _ = fetch(f"/orders?limit=5&fields={wanted}")
    reply, count, statements = fetch(f"/orders?limit={LISTED}&fields={wanted}")
    rows.append((f"GET /orders?limit=5&fields={wanted}", "", f"{small_count} statements"))
    rows.append(
        (f"GET /orders?limit={LISTED}&fields={wanted}", "", f"{count} statements; {reply.show(40)}")
    )
    items = reply.body.get("items") if isinstance(reply.body, dict) else None
    if reply.status != 200 or not isinstance(items, list) or len(items) != LISTED:
        raise Fail(
            f"GET /orders?limit={LISTED}&fields={wanted} got {reply.show()}; it should "
            f"be 200 with {LISTED} items.",
            evidence(),
        )
    for item in items:
        problem = _fields_issue(item, facts, names)
        if problem:
            raise Fail(
                f"GET /orders?limit={LISTED}&fields={wanted}: {problem} The client asked for "
                "exactly id, total and the customer's name: answer those and nothing else "
                '(nested: {"id": 7, "total": "19.90", "customer": {"name": "Ada"}}).',
                evidence(),
            )
    if count > MAX_STATEMENTS:
        shown = Evidence(
            f"statements PostgreSQL received for one request ({count})",
            "text",
            "\n".join(f"{k + 1}. {' '.join(s.split())[:140]}" for k, s in enumerate(statements[:8]))
            + ("\n..." if len(statements) > 8 else ""),
        )
        raise Fail(
            f"One request for {LISTED} orders with their customer's name cost {count} "
            f"statements at PostgreSQL (5 orders cost {small_count}): a query per order "
            f"(N+1). The cost must not grow with the page: fetch the customers of the whole "
            f"page at once (a join, or WHERE id = ANY(...)); at most {MAX_STATEMENTS} "
            "statements.",
            evidence(),
            shown,
        )
    single, _, _ = fetch(f"/orders/{sample}?fields=id,status")
    rows.append((f"GET /orders/{sample}?fields=id,status", "exactly id, status", single.show(60)))
    shape = set(single.body) if isinstance(single.body, dict) else None
    if single.status != 200 or shape != {"id", "status"}:
        raise Fail(
            f"GET /orders/{sample}?fields=id,status got {single.show()}: one order "
            "should honour fields too, with exactly id and status.",
            evidence(),
        )
    return Pass(
        f"fields=id,total,customer.name returns exactly those; {LISTED} orders cost {count} "
        f"statements (5 cost {small_count}); no secret column in any answer.",
        evidence(),
    )


def _fields_issue(item: Any, facts: dict[int, tuple[int, Decimal]], names: dict[int, str]) -> str:
    """What is wrong with one item of the fields=id,total,customer.name list ('' if nothing)."""
    if not isinstance(item, dict):
        return f"an item is {json.dumps(item)[:60]}, not an object."
    if set(item) != {"id", "total", "customer"}:
        return f"an item has the fields {sorted(item)}, not exactly id, total and customer."
    customer = item["customer"]
    if not isinstance(customer, dict) or set(customer) != {"name"}:
        shown = sorted(customer) if isinstance(customer, dict) else json.dumps(customer)
        return f"order {item['id']}'s customer is {shown}, not exactly its name."
    fact = facts.get(item["id"]) if _is_id(item["id"]) else None
    if fact is None:
        return f"item id {json.dumps(item['id'])} is not an order in the table."
    if _amount(item["total"]) != fact[1]:
        return (
            f"order {item['id']} has total {json.dumps(item['total'])}; the table says {fact[1]}."
        )
    if customer["name"] != names.get(fact[0]):
        return (
            f"order {item['id']}'s customer name is {json.dumps(customer['name'])}; its "
            f"customer {fact[0]} is {names.get(fact[0])!r}."
        )
    return ""
