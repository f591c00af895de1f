"""Checks for the caching lab: count what reaches PostgreSQL, read what sits in Redis.

Never timings. A cache's job is to keep work away from the source, so every check counts
the statements PostgreSQL received (at the wire, whatever client API the learner used)
and reads the keys and TTLs Redis holds. Where a check needs two things to happen in a
set order (a reader during a slow update, a reader that dies holding a lock), it makes
the order with a database lock it holds itself and waits until PostgreSQL shows the
learner's statement waiting on it; a sleep would only make it likely.

Each learner call runs in a fresh process, as each request may land on another app
server: only what the code keeps in Redis survives from one call to the next.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from sdtutor.lab.checks import CannotCheck, CheckContext, Evidence, Fail, Pass, check

FILE = "cache.py"
CLIENTS = ("postgres", "redis")
COLUMNS = ("id", "sku", "name", "category", "description", "price_cents", "stock")
PRODUCT = (
    "SELECT id, sku, name, category, description, price_cents, stock FROM products WHERE id = %s"
)

# Which products each check uses: different ones, so one check's leftovers cannot help
# or hurt another (each check also empties the lab's keys before it starts).
HOT, OTHER = 101, 202  # reads-cached
TTL_READS, TTL_WRITTEN = (303, 404), 505  # ttl
FRESH, RACED = 606, 707  # fresh-after-update
MISSING = 987_654  # negative-cache: past the seeded ids (1..5000), and
GONE = 2_468  # a product the check deletes for a moment (a discontinued one)
COLD, DYING = 808, 909  # stampede
REFUSED, HELD = 1001, 1102  # failed-write

TTL_MIN, TTL_MAX = 30, 86_400
"""A product's cached copy: at least 30 s (shorter barely helps: it expires between two
page views of a busy product) and at most a day (a missed invalidation must heal)."""
MISSING_CALLS, MISSING_MAX_READS = 5, 2
MISSING_TTL_MIN, MISSING_TTL_MAX = 5, 60
"""'No such product' is remembered briefly: a product created meanwhile is invisible. A
marker gone within seconds protects nothing: a bot asks again as soon as it expires."""
READERS, STAMPEDE_MAX_READS = 50, 2
STAMPEDE_LATENCY = 0.5
"""Seconds the proxy adds to each trip to PostgreSQL during the stampede: it widens the
window in which readers find the cache cold, so an unguarded miss shows as ~50 reads on
any machine. It is never measured, only imposed."""
LOCK_TTL_MAX = 60
"""A key left behind by a reader that died mid-read (a lock) must expire within this."""
KILL_AFTER = 6.0
"""How long the reader that holds the lock may run before the runner kills it."""
POLL = 0.05
TOO_MANY_CLIENTS = ("too many clients", "remaining connection slots are reserved")
SESSION_STATEMENTS = {"SET", "SHOW", "RESET", "DISCARD", "BEGIN", "START", "COMMIT", "ROLLBACK"}
"""Session housekeeping a client may send: not a read of the products."""


# ------------------------------------------------------------------ helpers


def _truth(ctx: CheckContext, product_id: int) -> dict[str, Any] | None:
    """The product as PostgreSQL has it now, shaped as get_product returns it."""
    rows = ctx.pg().execute(PRODUCT, (product_id,)).fetchall()
    return dict(zip(COLUMNS, rows[0], strict=True)) if rows else None


def _restore(ctx: CheckContext, product: dict[str, Any] | None) -> None:
    """Put a product's row back as it was before a check changed it."""
    if product is None:
        return
    ctx.pg().execute(
        "UPDATE products SET name = %s, category = %s, description = %s, "
        "price_cents = %s, stock = %s WHERE id = %s",
        (
            product["name"],
            product["category"],
            product["description"],
            product["price_cents"],
            product["stock"],
            product["id"],
        ),
    )


def _keys(ctx: CheckContext) -> list[tuple[str, str, int]]:
    """Every key under the lab's prefix, with its type and TTL (-1: no expiry).

    A key that expired between SCAN and TTL (-2) is gone, so it is left out.
    """
    return sorted((str(k), str(t), int(ttl)) for k, t, ttl in ctx.keys("*") if int(ttl) != -2)


def _clear(ctx: CheckContext) -> None:
    """Empty the lab's keys, so a check starts from a cold cache."""
    keys = [key for key, _, _ in _keys(ctx)]
    if keys:
        ctx.redis().delete(*keys)


def _value_text(ctx: CheckContext, key: str, kind: str) -> str:
    """A key's value as text, whatever its type (for finding which keys hold a product)."""
    r = ctx.redis()
    try:
        if kind == "string":
            return str(r.get(key) or "")
        if kind == "hash":
            return json.dumps(r.hgetall(key))
        if kind == "list":
            return json.dumps(r.lrange(key, 0, -1))
        if kind in ("set", "zset"):
            return json.dumps(sorted(r.smembers(key) if kind == "set" else r.zrange(key, 0, -1)))
        if kind == "ReJSON-RL":
            return str(r.execute_command("JSON.GET", key))
    except Exception:  # a binary value, or a type we cannot read: not a product copy
        return ""
    return ""


def _holding(ctx: CheckContext, sku: str) -> list[tuple[str, str, int]]:
    """The keys whose value carries this product (found by its unique SKU)."""
    return [(k, t, ttl) for k, t, ttl in _keys(ctx) if sku in _value_text(ctx, k, t)]


def _keys_evidence(keys: Iterable[tuple[str, str, int]], title: str) -> Evidence:
    rows = [(k, t, "no expiry" if ttl == -1 else f"{ttl} s") for k, t, ttl in keys]
    return Evidence(title, "table", (("key", "type", "TTL"), rows or [("(none)", "", "")]))


def _reads(statements: Iterable[str]) -> int:
    """Statements that did work in the database (session housekeeping does not count)."""
    count = 0
    for text in statements:
        words = text.strip().split(None, 1)
        if words and words[0].upper().rstrip(";") not in SESSION_STATEMENTS:
            count += 1
    return count


def _statements(run: Any) -> list[str]:
    return list(run.server["postgres"].statements)


def _show(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 160 else text[:157] + "..."


def _difference(got: Any, want: dict[str, Any] | None) -> str:
    """What differs between a returned product and the database's, in a few words."""
    if want is None:
        return f"it returned {_show(got)} where the database has no such product"
    if not isinstance(got, dict):
        return f"it returned {_show(got)} instead of a dict like the starter's"
    if "id" in got and str(got["id"]) != str(want["id"]):
        return (
            f"it returned product {got['id']} instead of product {want['id']}: the cache "
            f"key must tell products apart (put the id in it)"
        )
    parts = []
    for column in COLUMNS:
        if column not in got:
            parts.append(f"{column} is missing")
        elif got[column] != want[column]:
            mine, theirs = got[column], want[column]
            if str(mine) == str(theirs):
                parts.append(
                    f"{column} is {mine!r} ({type(mine).__name__}) where the database "
                    f"gives {theirs!r} ({type(theirs).__name__})"
                )
            else:
                parts.append(f"{column} is {mine!r} where the database has {theirs!r}")
    extra = sorted(set(got) - set(COLUMNS))
    if extra:
        parts.append(f"extra fields {', '.join(extra)}")
    return "; ".join(parts[:3]) or "it differs"


def _call_text(function: str, args: tuple[Any, ...]) -> str:
    return f"{function}({', '.join(repr(a) for a in args)})"


def _require_ok(ctx: CheckContext, run: Any, function: str, *args: Any) -> None:
    """Fail with a teaching message when the learner's call raised or never returned."""
    call = _call_text(function, args)
    if run.timed_out:
        raise Fail(
            f"{call} did not return within its time limit. Look for a loop that waits for "
            f"something that never comes: a lock nobody releases, or a wait with no end. "
            f"A reader that waits for another should give up after a few seconds and read "
            f"the database itself.",
            Evidence("its output", "text", run.output or "(none)"),
        )
    if run.ok:
        return
    error = str(run.error or "")
    if any(sign in error for sign in TOO_MANY_CLIENTS):
        # The server, not the learner: its max_connections is used up (by other sessions
        # on a shared server, or by the 50 readers of the stampede check).
        raise CannotCheck(
            f"PostgreSQL refused a new connection ({error.strip().splitlines()[-1]}). The "
            f"stampede check opens {READERS} connections at once; close other sessions on "
            f"this server, or give it a higher max_connections, and check again."
        )
    if "noperm" in error.lower() or "no permissions" in error.lower():
        prefix = ctx.prefixes["redis"]
        raise Fail(
            f"Redis refused {call}: {error}. The lab's Redis user may only touch keys that "
            f"start with the prefix in os.environ['REDIS_KEY_PREFIX'] (here '{prefix}'), as "
            f"an app sharing a Redis with other teams would. Build every key from it, lock "
            f'keys too: f"{{PREFIX}}product:{{product_id}}".',
            Evidence("traceback", "text", run.traceback or error),
        )
    raise Fail(
        f"{call} raised an error: {error}",
        Evidence("traceback", "text", run.traceback or run.output or error),
    )


def _run(ctx: CheckContext, function: str, *args: Any, **options: Any) -> Any:
    """Call the learner's function in a fresh process with a database and a Redis client."""
    return ctx.run(FILE, function, *args, clients=CLIENTS, **options)


def _get(ctx: CheckContext, product_id: int, **options: Any) -> Any:
    """get_product(product_id), which must return without an error."""
    run = _run(ctx, "get_product", product_id, **options)
    _require_ok(ctx, run, "get_product", product_id)
    return run


def _in_background(job: Callable[[], Any]) -> Future[Any]:
    """Start a learner call on another thread while the check arranges what happens next."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="caching-check")
    future = pool.submit(job)
    pool.shutdown(wait=False)
    return future


def _wait_until_blocked(ctx: CheckContext, job: Future[Any], limit: float) -> bool:
    """Wait until a session waits on a lock this checker holds; False if the job ended first.

    pg_locks is read live on every call (unlike pg_stat_activity, which a transaction
    snapshots), so polling it inside the lock-holding transaction is sound.
    """
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and not job.done():
        waiting = (
            ctx.pg()
            .execute(
                "SELECT count(*) FROM pg_locks WHERE NOT granted "
                "AND pg_backend_pid() = ANY(pg_blocking_pids(pid))"
            )
            .fetchone()[0]
        )
        if waiting:
            return True
        time.sleep(POLL)
    return False


def _limit(ctx: CheckContext) -> float:
    return float(ctx.lab.time_limit)


# ------------------------------------------------------------------ the checks


@check("reads-cached")
def reads_cached(ctx: CheckContext) -> Pass:
    """Repeated reads of a product reach PostgreSQL once, across processes."""
    _clear(ctx)
    order = [HOT, HOT, HOT, OTHER, HOT, HOT]
    truth = {pid: _truth(ctx, pid) for pid in set(order)}
    reads: list[int] = []
    for n, pid in enumerate(order, start=1):
        run = _get(ctx, pid)
        if run.value != truth[pid]:
            where = "from the database" if _reads(_statements(run)) else "from the cache"
            difference = _difference(run.value, truth[pid])
            advice = (
                ""
                if "instead of product" in difference
                else " Whatever the source, return the same dict the starter returns: the "
                "product's columns, with the database's types (json.loads gives back the "
                "ints that json.dumps wrote; a Redis hash gives back only strings)."
            )
            raise Fail(
                f"Call {n}, get_product({pid}), answered {where}, and {difference}.{advice}",
                Evidence("returned", "text", _show(run.value)),
                Evidence("in the database", "text", _show(truth[pid])),
            )
        reads.append(_reads(_statements(run)))
    table = Evidence(
        "statements that reached PostgreSQL, per call",
        "table",
        (
            ("call", "product", "statements"),
            [(n, pid, r) for n, (pid, r) in enumerate(zip(order, reads, strict=True), start=1)],
        ),
    )
    total, distinct = sum(reads), len(set(order))
    keys = _keys(ctx)
    if total > distinct:
        if not keys:
            raise Fail(
                f"{len(order)} calls for {distinct} products sent {total} statements to "
                f"PostgreSQL, and Redis holds no keys under your prefix: nothing was cached. "
                f"Cache-aside: look in the cache first, and on a miss fill it from the "
                f"database. (A dict or functools."
                f"lru_cache in your module would not help: each call here runs in a new "
                f"process, as requests land on different app servers.)",
                table,
            )
        after_other = order.index(OTHER) + 1  # the first read of HOT after OTHER's
        repeats = [i for i in range(1, order.index(OTHER)) if order[i] == HOT]
        if reads[after_other] and not any(reads[i] for i in repeats):
            raise Fail(
                f"Product {HOT} was served from the cache until product {OTHER} was read; "
                f"then get_product({HOT}) went to the database again. Each product needs "
                f"its own key (put the id in it), so reading one does not push out another.",
                table,
                _keys_evidence(keys, "keys under your prefix"),
            )
        raise Fail(
            f"{len(order)} calls for {distinct} products sent {total} statements to "
            f"PostgreSQL (expected {distinct}: one per product), although your code stores "
            f"keys in Redis. Check that the key you GET is exactly the key you SET, and "
            f"that a hit returns without touching the database.",
            table,
            _keys_evidence(keys, "keys under your prefix"),
        )
    return Pass(
        f"{len(order)} calls for {distinct} products, each in its own process, reached "
        f"PostgreSQL {total} times: once per product. Reading product {OTHER} did not push "
        f"product {HOT} out.",
        table,
        _keys_evidence(keys, "keys under your prefix"),
    )


@check("ttl")
def ttl(ctx: CheckContext) -> Pass:
    """Every key the code writes expires; a product's copy lives 30 s to 1 day."""
    _clear(ctx)
    written = _truth(ctx, TTL_WRITTEN)
    assert written is not None
    try:
        for pid in TTL_READS:
            _get(ctx, pid)
        # A write too, since write-through stores the new row on the write path.
        changes = {"stock": written["stock"] + 1}
        run = _run(ctx, "update_product", TTL_WRITTEN, changes)
        _require_ok(ctx, run, "update_product", TTL_WRITTEN, changes)
        _get(ctx, TTL_WRITTEN)
        keys = _keys(ctx)
    finally:
        _restore(ctx, written)
    evidence = _keys_evidence(keys, "keys under your prefix")
    if not keys:
        raise Fail(
            "After reading three products (and updating one), Redis holds no keys under "
            "your prefix: nothing is cached, so there is no TTL to judge. Store each "
            "product you read, with an expiry.",
            evidence,
        )
    skus = [f"SKU-{pid:06d}" for pid in (*TTL_READS, TTL_WRITTEN)]
    copies = {k for sku in skus for k, _, _ in _holding(ctx, sku)}
    forever = [(k, t, s) for k, t, s in keys if s < 0]
    if forever:
        more = f" (and {len(forever) - 1} more)" if len(forever) > 1 else ""
        raise Fail(
            f"{forever[0][0]}{more} has no expiry (TTL -1). "
            f"A key without a TTL lives until something deletes it, so one missed "
            f"invalidation (a crash between the database write and the delete, a code path "
            f"that forgets) serves a stale product forever. Every key you write needs an "
            f"expiry, on the read path and on the write path.",
            evidence,
        )
    too_long = [(k, t, s) for k, t, s in keys if s > TTL_MAX]
    if too_long:
        key, _, seconds = too_long[0]
        raise Fail(
            f"{key} expires in {seconds:,} s ({seconds / 86_400:.1f} days). The TTL is the "
            f"longest a stale copy can survive a missed invalidation; keep it between "
            f"{TTL_MIN} s and a day (minutes suit a product page).",
            evidence,
        )
    too_short = [(k, t, s) for k, t, s in keys if k in copies and s < TTL_MIN]
    if too_short:
        key, _, seconds = too_short[0]
        raise Fail(
            f"{key} holds a product but expires in {seconds} s: so short that a busy "
            f"product is fetched again between two page views, and the database does "
            f"nearly the work it did without a cache. Choose at least {TTL_MIN} s (minutes "
            f"suit a product page).",
            evidence,
        )
    if not copies:
        raise Fail(
            "Redis holds keys under your prefix, but none of them holds the products that "
            f"were read (their SKUs, e.g. {skus[0]}, appear in no value). Store the product "
            f"itself: a JSON string, or a hash of its columns.",
            evidence,
        )
    ttls = sorted(s for k, _, s in keys if k in copies)
    return Pass(
        f"Every key under your prefix expires; the {len(copies)} product copies have TTLs "
        f"of {ttls[0]}-{ttls[-1]} s.",
        evidence,
    )


@check("fresh-after-update")
def fresh_after_update(ctx: CheckContext) -> Pass:
    """A read after an update returns the new row, also when a read ran during the update."""
    _clear(ctx)
    before, raced = _truth(ctx, FRESH), _truth(ctx, RACED)
    assert before is not None and raced is not None
    try:
        _get(ctx, FRESH)  # warm: the old row is now cached
        changes = {"price_cents": before["price_cents"] + 100, "stock": before["stock"] + 3}
        run = _run(ctx, "update_product", FRESH, changes)
        _require_ok(ctx, run, "update_product", FRESH, changes)
        now = _truth(ctx, FRESH)
        assert now is not None
        if any(now[c] != v for c, v in changes.items()):
            raise Fail(
                f"update_product({FRESH}, {changes}) returned, but the row in PostgreSQL "
                f"did not change (price_cents {now['price_cents']}, stock {now['stock']}). "
                f"The database is the source of truth: write the change there (the "
                f"starter's UPDATE does), then deal with the cache."
            )
        after = _get(ctx, FRESH)
        if after.value != now:
            raise Fail(
                f"After update_product({FRESH}, {changes}) the database holds the new row, "
                f"but get_product({FRESH}) returned the old one: {_difference(after.value, now)}. "
                f"The cached copy outlived the write and will be served until its TTL runs "
                f"out. When update_product has written the row, delete the product's key "
                f"(the next read loads the new row), or store the new row in it.",
                Evidence("returned", "text", _show(after.value)),
                Evidence("in the database", "text", _show(now)),
            )

        # The same, with a reader arriving while the update waits for the row. The checker
        # holds the row lock (as another transaction might), so the order is certain:
        # update starts -> its UPDATE waits -> a reader runs -> the UPDATE commits.
        _get(ctx, RACED)
        changes = {"price_cents": raced["price_cents"] + 100, "stock": raced["stock"] + 3}
        sku = raced["sku"]
        with ctx.scratch() as conn:
            conn.execute("SELECT id FROM products WHERE id = %s FOR UPDATE", (RACED,))
            writer = _in_background(
                lambda: _run(ctx, "update_product", RACED, changes, timeout=_limit(ctx) + 10)
            )
            blocked = _wait_until_blocked(ctx, writer, _limit(ctx))
            copies_while_waiting = _holding(ctx, sku) if blocked else []
            reader = _get(ctx, RACED) if blocked else None
        wrote = writer.result()
        _require_ok(ctx, wrote, "update_product", RACED, changes)
        if not blocked:
            raise Fail(
                f"update_product({RACED}, {changes}) returned while the checker held the "
                f"row locked, so it never wrote the row. Write the change to PostgreSQL, "
                f"then deal with the cache."
            )
        now = _truth(ctx, RACED)
        final = _get(ctx, RACED)
        if final.value != now:
            evidence = [
                Evidence("read during the update returned", "text", _show(reader.value))
                if reader
                else None,
                Evidence("read after the update returned", "text", _show(final.value)),
                Evidence("in the database", "text", _show(now)),
            ]
            why = (
                "Your update_product removed the cached copy before its UPDATE ran"
                if not copies_while_waiting
                else "The cached copy was still there when the UPDATE committed, and "
                "nothing replaced it"
            )
            raise Fail(
                f"A reader came while update_product({RACED}, ...) was waiting for the row "
                f"(another transaction held it). {why}: the reader missed, read the old row "
                f"(the update had not committed yet) and cached it. Once the UPDATE "
                f"committed, nothing removed that copy, so get_product({RACED}) now "
                f"returns the old row ({_difference(final.value, now)}) until the TTL runs "
                f"out. Touch the cache only after the database write has returned: delete "
                f"the key then (or store the new row).",
                *[e for e in evidence if e is not None],
            )
    finally:
        _restore(ctx, before)
        _restore(ctx, raced)
        _clear(ctx)
    return Pass(
        f"After each update the next read returned the new row, also when a reader came "
        f"while product {RACED}'s update was waiting for its row.",
    )


def _missing_lookups(ctx: CheckContext, product_id: int) -> tuple[list[int], list[Any]]:
    """MISSING_CALLS lookups of a product that does not exist, each of which must return
    None; returns the statements each sent to PostgreSQL, and the keys under the prefix
    right after the first lookup (a marker with a TTL of a tenth of a second is still
    there, and shows its TTL; after five quick lookups it may be gone)."""
    runs, reads, first = [], [], []
    for n in range(MISSING_CALLS):
        run = _get(ctx, product_id)
        if run.value is not None:
            again = "A repeated" if n else "A"
            raise Fail(
                f"{again} get_product({product_id}) returned {_show(run.value)}, but no "
                f"product has that id: return None, as the starter does, whether the answer "
                f"came from the database or from a cached 'not found'."
            )
        runs.append(run)
        reads.append(_reads(_statements(run)))
        if n == 0:
            first = _keys(ctx)
    return reads, first


def _reads_table(product_id: int, reads: list[int]) -> Evidence:
    return Evidence(
        f"statements that reached PostgreSQL per lookup of product {product_id}",
        "table",
        (("call", "statements"), [(n, r) for n, r in enumerate(reads, start=1)]),
    )


def _penetration(product_id: int, what: str, reads: list[int], keys: Any) -> Fail:
    short = [(k, t, s) for k, t, s in keys if 0 <= s < 5]
    extra = (
        f" Your code did store {short[0][0]}, but it expires after {short[0][2]} s: too "
        f"soon to protect anything."
        if short
        else ""
    )
    return Fail(
        f"{MISSING_CALLS} lookups of product {product_id}, {what}, sent {sum(reads)} "
        f"statements to PostgreSQL: every miss goes to the database, so a bot asking for "
        f"random ids (cache penetration) hits it at full rate.{extra} Cache the 'not found' "
        f"too, briefly: a marker such as the JSON null with a TTL of about 30 s, and return "
        f"None when you read it back.",
        _reads_table(product_id, reads),
        _keys_evidence(keys, "keys under your prefix"),
    )


@check("negative-cache")
def negative_cache(ctx: CheckContext) -> Pass:
    """A missing product is looked up in PostgreSQL once, then remembered briefly."""
    _clear(ctx)
    assert _truth(ctx, MISSING) is None
    reads, first = _missing_lookups(ctx, MISSING)
    marker = _keys(ctx)
    if not reads[0]:
        raise Fail(
            f"get_product({MISSING}) returned None on a cold cache without asking PostgreSQL "
            f"(no statement reached it). Only the database knows which products exist: ids "
            f"do not stop at 5000, and a product added a second ago would be reported "
            f"missing. Look the id up, and when no row comes back, cache that 'not found' "
            f"briefly so the next lookups do not reach the database.",
            _reads_table(MISSING, reads),
            _keys_evidence(marker, f"keys after {MISSING_CALLS} lookups of a missing product"),
        )
    forever = [(k, t, s) for k, t, s in marker if s < 0]
    if forever:
        raise Fail(
            f"After get_product({MISSING}) found nothing, {forever[0][0]} was stored with no "
            f"expiry. Caching a miss is right, but forever is not: if that product is "
            f"created later, it stays invisible until someone deletes the key. Give the "
            f"'not found' marker a short TTL (about 30 s, at most {MISSING_TTL_MAX} s).",
            _keys_evidence(marker, "keys after lookups of a missing product"),
        )
    too_long = [(k, t, s) for k, t, s in marker if s > MISSING_TTL_MAX]
    if too_long:
        key, _, seconds = too_long[0]
        raise Fail(
            f"The 'not found' marker {key} lives {seconds} s. A product created meanwhile "
            f"stays invisible that long; keep misses short (about 30 s, at most "
            f"{MISSING_TTL_MAX} s), shorter than the copies of products that exist.",
            _keys_evidence(marker, "keys after lookups of a missing product"),
        )
    if sum(reads) > MISSING_MAX_READS:
        raise _penetration(MISSING, "which does not exist", reads, marker)
    fleeting = [(k, t, s) for k, t, s in first if 0 <= s < MISSING_TTL_MIN]
    if fleeting:
        key, _, seconds = fleeting[0]
        raise Fail(
            f"get_product({MISSING}) found nothing and cached that as {key}, which expires "
            f"after {seconds} s: too soon to protect anything. A bot asking for missing ids "
            f"again and again (cache penetration) reaches PostgreSQL again each time the "
            f"marker expires. Keep the 'not found' about 30 s (at least {MISSING_TTL_MIN} "
            f"s, at most {MISSING_TTL_MAX} s).",
            _reads_table(MISSING, reads),
            _keys_evidence(first, "keys right after the first lookup of a missing product"),
        )

    # A product that existed and is gone (discontinued): its id lies among the others, so
    # no rule about ids can say it is missing; only the database can, once.
    gone = _truth(ctx, GONE)
    assert gone is not None
    ctx.pg().execute("DELETE FROM products WHERE id = %s", (GONE,))
    try:
        gone_reads, _ = _missing_lookups(ctx, GONE)
        if sum(gone_reads) > MISSING_MAX_READS:
            raise _penetration(GONE, "which the checker had just deleted", gone_reads, _keys(ctx))
    finally:
        ctx.pg().execute(
            "INSERT INTO products (id, sku, name, category, description, price_cents, stock) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
            tuple(gone[c] for c in COLUMNS),
        )
        _clear(ctx)
    ttls = [s for _, _, s in marker if s >= 0]
    return Pass(
        f"{MISSING_CALLS} lookups of a product that does not exist reached PostgreSQL "
        f"{sum(reads)} time(s), the first of them asking it; {MISSING_CALLS} of a product "
        f"deleted a moment before, {sum(gone_reads)} time(s). The 'not found' marker "
        f"expires after {max(ttls, default=0)} s.",
        _reads_table(MISSING, reads),
        _keys_evidence(marker, "keys after lookups of a missing product"),
    )


@check("stampede")
def stampede(ctx: CheckContext) -> Pass:
    """50 concurrent readers of a cold key cause at most two reads; a dead reader frees it."""
    _clear(ctx)
    want = _truth(ctx, COLD)
    slow = ctx.proxy("postgres")
    slow.latency = STAMPEDE_LATENCY
    crowd = ctx.workers(
        FILE,
        "get_product",
        READERS,
        clients=CLIENTS,
        args_for=lambda i: [COLD],
        proxies={"postgres": slow},
    )
    for run in crowd.runs:
        _require_ok(ctx, run, "get_product", COLD)
    wrong = [r.value for r in crowd.runs if r.value != want]
    if wrong:
        raise Fail(
            f"{len(wrong)} of {READERS} concurrent get_product({COLD}) calls returned a "
            f"different product: {_difference(wrong[0], want)}. A reader that waited for "
            f"another must return what that one cached, decoded the same way."
        )
    reads = _reads(crowd.server["postgres"].statements)
    keys = _keys(ctx)
    if reads > STAMPEDE_MAX_READS:
        raise Fail(
            f"{READERS} readers of product {COLD}, released together on a cold cache, sent "
            f"{reads} reads to PostgreSQL (at most {STAMPEDE_MAX_READS} allowed): each one "
            f"missed and went to the database before the first had filled the cache, a "
            f"stampede. Note that the readers are {READERS} separate processes, like "
            f"{READERS} app servers: a threading.Lock or a dict in your module coordinates "
            f"only the threads of one process. The readers need something they all see to "
            f"agree that only one of them loads the row, while the others wait a moment "
            f"and read the cache again.",
            Evidence(
                "what the database saw",
                "text",
                f"{reads} statements from {READERS} readers; the proxy added "
                f"{STAMPEDE_LATENCY} s to each trip to PostgreSQL, as a busy database would.",
            ),
            _keys_evidence(keys, "keys under your prefix afterwards"),
        )

    # A reader that takes the lock and then dies (a deploy, the OOM killer) must not keep
    # the product locked: hold the table so its read waits, and let the runner kill it.
    _clear(ctx)
    with ctx.scratch() as conn:
        conn.execute("LOCK TABLE products IN ACCESS EXCLUSIVE MODE")
        victim = _in_background(lambda: _run(ctx, "get_product", DYING, timeout=KILL_AFTER))
        blocked = _wait_until_blocked(ctx, victim, KILL_AFTER)
        held = _keys(ctx)  # what the reader holds while its read waits: its lock, if any
        victim.result()  # the runner kills it at KILL_AFTER
        left = _keys(ctx)
    if blocked:
        forever = [(k, t, s) for k, t, s in left if s < 0]
        if forever:
            raise Fail(
                f"The stampede guard works ({reads} read(s) for {READERS} readers), but a "
                f"reader that was killed while it held the lock (its database read was "
                f"slow; the process was stopped, as a deploy or the OOM killer would) left "
                f"{forever[0][0]} with no expiry. Its finally: never ran, so nothing will "
                f"ever delete that lock, and every later reader of product {DYING} waits "
                f"for it. A lock that its holder may never release must end on its own.",
                _keys_evidence(left, f"keys left after a reader of product {DYING} was killed"),
            )
        too_long = [(k, t, s) for k, t, s in held if s > LOCK_TTL_MAX]
        if too_long:
            key, _, seconds = too_long[0]
            raise Fail(
                f"While a reader of product {DYING} waited for the database it held {key}, "
                f"which expires only in {seconds} s: had it died, every reader of that "
                f"product would wait that long. A lock should expire a little after the "
                f"slowest read it guards: a few seconds.",
                _keys_evidence(held, f"keys while a reader of product {DYING} waited"),
            )
    evidence = _keys_evidence(held, f"keys while a reader of product {DYING} waited")
    wait = max((s for _, _, s in left), default=0)
    after = _run(ctx, "get_product", DYING, timeout=wait + _limit(ctx))
    _require_ok(ctx, after, "get_product", DYING)
    if after.value != _truth(ctx, DYING):
        raise Fail(
            f"After a reader died holding the lock, get_product({DYING}) returned "
            f"{_show(after.value)}, not the product."
        )
    locks = [s for _, _, s in held if s > 0]
    lock_note = (
        f"the lock it held expires on its own ({max(locks)} s)"
        if locks
        else "it left nothing behind that could block the others"
    )
    return Pass(
        f"{READERS} concurrent readers of a cold product reached PostgreSQL {reads} time(s). "
        f"A reader killed in the middle of its read: {lock_note}.",
        evidence,
    )


@check("failed-write")
def failed_write(ctx: CheckContext) -> Pass:
    """An update that PostgreSQL refuses leaves nothing of its value in the cache."""
    _clear(ctx)
    refused, held = _truth(ctx, REFUSED), _truth(ctx, HELD)
    assert refused is not None and held is not None
    cases = [
        (
            REFUSED,
            refused,
            {"stock": -5},
            "CHECK constraint stock_not_negative: an order took more than was in stock",
        ),
        (
            HELD,
            held,
            {"price_cents": held["price_cents"] + 500},
            "trigger products_hold_guard: the product is on hold for a stock audit",
        ),
    ]
    conn = ctx.pg()
    conn.execute(
        "INSERT INTO product_holds (product_id, reason) VALUES (%s, 'stock audit') "
        "ON CONFLICT (product_id) DO NOTHING",
        (HELD,),
    )
    raised = 0
    try:
        for pid, before, changes, guard in cases:
            _get(ctx, pid)  # warm: the old row is cached
            run = _run(ctx, "update_product", pid, changes)
            if run.timed_out:
                _require_ok(ctx, run, "update_product", pid, changes)
            raised += not run.ok
            now = _truth(ctx, pid)
            if now != before:
                raise Fail(
                    f"update_product({pid}, {changes}) changed the row although the lab's "
                    f"database should refuse it ({guard}). Have the table or its trigger been "
                    f"changed? `sdtutor lab reset caching` restores them (your files are "
                    f"kept aside)."
                )
            after = _get(ctx, pid)
            got = after.value
            phantom = isinstance(got, dict) and all(got.get(c) == v for c, v in changes.items())
            if got != now and not phantom:
                raise Fail(
                    f"After PostgreSQL refused update_product({pid}, {changes}) ({guard}), "
                    f"get_product({pid}) returned something other than the unchanged row: "
                    f"{_difference(got, now)}.",
                    Evidence("get_product returned", "text", _show(got)),
                    Evidence("in the database", "text", _show(now)),
                )
            if phantom:
                raise Fail(
                    f"PostgreSQL refused update_product({pid}, {changes}) ({guard}), and the "
                    f"row is unchanged, but get_product({pid}) now answers with the refused "
                    f"change ({_difference(after.value, now)}): your update put it in "
                    f"the cache before the database accepted it, so every reader sees a "
                    f"change that never happened, until the TTL runs out. Write to "
                    f"PostgreSQL first; touch the cache only after the write succeeds. If "
                    f"the write raises, the cached copy still matches the database: leave "
                    f"it.",
                    Evidence("update_product raised", "text", run.error or "(nothing)"),
                    Evidence("get_product returned", "text", _show(after.value)),
                    Evidence("in the database", "text", _show(now)),
                )
    finally:
        conn.execute("DELETE FROM product_holds WHERE product_id = %s", (HELD,))
        _restore(ctx, refused)
        _restore(ctx, held)
        _clear(ctx)
    note = (
        " update_product let the database's error reach its caller, as it should."
        if raised == len(cases)
        else " (update_product returned normally although the write failed: callers may "
        "think it worked; let the error propagate.)"
    )
    return Pass(
        "Two updates that PostgreSQL refused (a CHECK constraint, a trigger) left the cache "
        "matching the database: the next reads returned the unchanged rows." + note
    )
