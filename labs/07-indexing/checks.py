"""Checks for the indexing lab: what the database does with the learner's work.

Plans, buffers, statements and rows say the same thing every run; timings do not. Any
correct spelling passes: the planner decides whether an index serves a query, the data
decides whether a partial index holds the pending orders, and walking every page
against the truth decides whether pagination is right.
"""

from __future__ import annotations

from typing import Any

from sdtutor.lab.checks import (
    CheckContext,
    Evidence,
    Fail,
    Indexes,
    LearnerQuery,
    Pass,
    check,
    statements_evidence,
)
from sdtutor.lab.runner import normalise

HEAVY, LIGHT = 42, 4242  # user 42: 1,000 orders in batches of 25 sharing a created_at
WHO = {HEAVY: "1,000 orders", LIGHT: "5 orders"}
ORDERS, USERS = 199_500, 20_000
LATEST = (
    "SELECT id, status, total, created_at FROM orders "
    "WHERE user_id = %s ORDER BY created_at DESC LIMIT 20"
)
QUEUE = (
    "SELECT id, user_id, total, created_at FROM orders "
    "WHERE status = 'pending' ORDER BY created_at LIMIT 50"
)
PENDING = "status = 'pending'"


# ------------------------------------------------------------------ the data


@check("data-intact")
def data_intact(ctx: CheckContext) -> Pass:
    """Fast queries over less data prove nothing; an INVALID index only costs."""
    orders, users = (
        ctx.value("SELECT count(*) FROM orders"),
        ctx.value("SELECT count(*) FROM users"),
    )
    if (orders, users) != (ORDERS, USERS):
        raise Fail(
            f"The lab's data has changed: {orders:,} orders and {users:,} users, where the "
            f"lab started with {ORDERS:,} and {USERS:,}. Fast queries over less data prove "
            f"nothing. Run `sdtutor lab reset indexing` to restore it (your workspace files "
            f"are kept aside)."
        )
    invalid = ctx.indexes("orders").invalid()
    if invalid:
        raise Fail(
            f"{', '.join(invalid.names)} is INVALID: a CREATE INDEX CONCURRENTLY failed "
            f"part-way, and PostgreSQL will not use it but still maintains it on every write. "
            f"DROP INDEX it and create it again.",
            invalid.evidence("invalid indexes"),
        )
    return Pass(f"{orders:,} orders and {users:,} users, as seeded; every index is valid.")


# ------------------------------------------------------------------ task 1


@check("latest-orders")
def latest_orders(ctx: CheckContext) -> Pass:
    """Task 1: an index that leads with user_id serves a user's latest orders, unsorted."""
    ctx.analyze("orders")
    indexes = ctx.indexes("orders").valid()
    serving = indexes.leading_with("user_id")
    plans = {u: ctx.plan(LATEST, (u,), title=f"plan for user {u} ({WHO[u]})") for u in WHO}
    if not serving.full() and not plans[HEAVY].used_index(serving):
        raise _no_index_for_a_user(indexes, plans[HEAVY].buffers, plans[HEAVY].evidence())
    for user, plan in plans.items():
        plan.must_use_index(
            serving,
            why=f"For user {user} ({WHO[user]}) PostgreSQL does not use "
            f"{', '.join(serving.names)} (it read {plan.buffers} buffers another way). Check "
            f"that the index's key columns fit the query: WHERE user_id = ?, ORDER BY "
            f"created_at DESC.",
        )
        used = serving.used_by(plan)
        assert used is not None  # must_use_index passed
        plan.must_not_sort(
            why=f"For user {user} ({WHO[user]}) PostgreSQL finds the orders with {used.name} "
            f"on ({', '.join(used.columns)}), but then sorts all of them (the Sort node) to "
            f"keep the newest 20. An index whose second column is created_at hands the rows "
            f"over already in order (read backward for DESC), so LIMIT 20 stops after 20 "
            f"entries.",
        )
        plan.buffers_at_most(
            40,
            why=f"For user {user} ({WHO[user]}) the query read {plan.buffers} buffers; a good "
            f"index needs a handful (at most 40). Look at the plan below for rows that are "
            f"read and then thrown away.",
        )
    heavy, light = plans[HEAVY], plans[LIGHT]
    return Pass(
        f"{heavy.used_index(serving)} serves it with no Sort: {heavy.buffers} buffers for "
        f"user {HEAVY} (1,000 orders), {light.buffers} for user {LIGHT} (5 orders).",
        heavy.evidence(),
    )


def _no_index_for_a_user(indexes: Indexes, buffers: int, plan: Evidence) -> Fail:
    """Why no index finds one user's orders, worded from what the catalog holds."""
    backwards = [ix for ix in indexes if "user_id" in ix.columns[1:]]
    if backwards:
        ix = backwards[0]
        return Fail(
            f"Your index {ix.name} on ({', '.join(ix.columns)}) has user_id after "
            f"{ix.columns[0]}. A B-tree is sorted by its first column, so it cannot jump to "
            f"one user's orders: for user {HEAVY} PostgreSQL read {buffers} buffers. Think about "
            f"which column the query compares with = and which one it sorts by, and in "
            f"which order an index must hold them.",
            plan,
            indexes.evidence(),
        )
    partial = indexes.leading_with("user_id").partial()
    extra = (
        f" ({partial[0].name} leads with user_id, but it is partial (WHERE "
        f"{partial[0].predicate}), so it only serves queries with that condition.)"
        if partial
        else ""
    )
    return Fail(
        f"No index on orders starts with user_id, so finding one user's latest orders means "
        f"reading the whole table: {buffers} buffers for user {HEAVY}.{extra} An index "
        f"can only jump to the rows of one user if user_id is where it starts.",
        plan,
        indexes.evidence(),
    )


# ------------------------------------------------------------------ task 2


@check("pending-queue")
def pending_queue(ctx: CheckContext) -> Pass:
    """Task 2: a small partial index holding only pending orders serves the queue in order."""
    ctx.analyze("orders")
    indexes = ctx.indexes("orders").valid()
    pending = ctx.value(f"SELECT count(*) FROM orders WHERE {PENDING}")
    plan = ctx.plan(QUEUE, title="plan for the pending queue")
    # Whatever the spelling ('pending' = status, status IN ('pending'), a cast): the
    # index qualifies when its WHERE picks exactly the pending rows.
    only_pending = Indexes(
        ix
        for ix in indexes.partial()
        if ctx.selects_same_rows("orders", str(ix.predicate), PENDING)
    )
    if not only_pending:
        raise _no_pending_index(indexes, pending, plan.buffers, plan.evidence())
    keyed = [ix for ix in only_pending if ix.leading == "created_at"]
    plan.must_use_index(
        only_pending,
        why=f"{keyed[0].name} holds exactly the pending orders, but the queue's plan does not "
        f"use it: PostgreSQL uses a partial index only when it can prove from the query's "
        f"WHERE that every row it needs is in the index. Write its condition as simply as "
        f"the queue does: WHERE status = 'pending'."
        if keyed
        else f"You have a partial index for pending orders ({', '.join(only_pending.names)}), "
        f"but the queue's plan does not use it. Key it on the column the queue sorts by.",
    )
    ix = only_pending.used_by(plan)
    assert ix is not None  # must_use_index passed
    plan.must_not_sort(
        why=f"{ix.name} finds the {pending:,} pending orders, but keyed on "
        f"({', '.join(ix.columns)}) it returns them in that order, so PostgreSQL still sorts "
        f"them all to find the oldest 50 (the Sort node). Key the partial index on "
        f"created_at, the column the queue orders by.",
    )
    pkey = indexes.primary_key
    limit = pkey.size // 10 if pkey else 512 * 1024
    if ix.size > limit:
        plan.fail(
            f"{ix.name} is {ix.size // 1024} kB, more than a tenth of the primary key "
            f"({limit * 10 // 1024} kB). A queue index should hold only pending orders and "
            f"the few columns the queue needs."
        )
    plan.buffers_at_most(80, why=f"The queue read {plan.buffers} buffers (at most 80 expected).")
    return Pass(
        f"{ix.name} holds only pending orders ({ix.size // 1024} kB, vs "
        f"{(pkey.size if pkey else 0) // 1024} kB for the primary key) and serves the queue "
        f"in order: {plan.buffers} buffers, no Sort.",
        plan.evidence(),
    )


def _no_pending_index(indexes: Indexes, pending: int, buffers: int, plan: Evidence) -> Fail:
    """Why no index serves the queue, worded from what the catalog holds."""
    full = indexes.full().containing("status")
    if full:
        ix = full[0]
        return Fail(
            f"{ix.name} indexes status for all {ORDERS:,} orders ({ix.size // 1024} kB), "
            f"although the queue only ever asks for the {pending:,} pending ones, and every "
            f"write to any order must update it. An index need not hold every row: look at "
            f"partial indexes, which hold only the rows the queue reads.",
            plan,
            indexes.evidence(),
        )
    others = indexes.partial()
    extra = (
        f" ({others[0].name} is partial, but its condition, {others[0].predicate}, does not "
        f"pick exactly the pending orders.)"
        if others
        else ""
    )
    return Fail(
        f"No index covers only the pending orders, so the queue reads {buffers} buffers to "
        f"find {pending:,} pending rows among {ORDERS:,}.{extra} An index can hold only "
        f"the rows a condition picks (a partial index).",
        plan,
        indexes.evidence(),
    )


# ------------------------------------------------------------------ task 3

PAGE = 20
APP_GIVES = {"user_id", "last_created_at", "last_id", "offset"}
FIRST_PAGE = (  # when queries.sql has no first_page
    "SELECT id, status, total, created_at FROM orders WHERE user_id = %(user_id)s "
    "ORDER BY created_at DESC, id DESC LIMIT 20"
)
Row = tuple[int, Any]  # (id, created_at)
Query = LearnerQuery | str


@check("keyset-pagination")
def keyset_pagination(ctx: CheckContext) -> Pass:
    """Task 3: next_page shows every order once, in order, at the same cost on every page."""
    queries = ctx.queries("queries.sql")
    page, first = queries["next_page"], queries.get("first_page", FIRST_PAGE)
    unknown = page.params - APP_GIVES
    if unknown:
        raise Fail(
            f"next_page uses :{', :'.join(sorted(unknown))}, which the app cannot give. It "
            f"can give :user_id, :last_created_at, :last_id (the last row shown) and :offset.",
            page.evidence(),
        )
    truth: list[Row] = [
        (r[0], r[1])
        for r in ctx.query(
            "SELECT id, created_at FROM orders WHERE user_id = %s "
            "ORDER BY created_at DESC, id DESC",
            (HEAVY,),
        )
    ]
    with ctx.scratch():
        # Judge this task under a good index even when task 1 is not done yet.
        if not ctx.indexes("orders").valid().full().leading_with("user_id", "created_at"):
            ctx.query("CREATE INDEX sdtutor_check_user_created ON orders (user_id, created_at)")
        costs = {
            shown: ctx.plan(page if shown else first, _cursor(truth, shown)).buffers
            for shown in COST_SAMPLES
        }
        deep = ctx.plan(page, _cursor(truth, PAGE), title="plan for page 2")
        walked = _walk(ctx, first, page, truth)
        # The same walk with the index switched off: rows that tie on every ORDER BY key
        # then come back in another order, so an order that holds only by luck shows.
        ctx.query("SET LOCAL enable_indexscan = off")
        ctx.query("SET LOCAL enable_indexonlyscan = off")
        rewalked = _walk(ctx, first, page, truth)
    yours = page.evidence()
    reading = ", ".join(f"page {shown // PAGE + 1}: {b}" for shown, b in sorted(costs.items()))
    per_page = Evidence(f"buffers read per page (user {HEAVY})", "text", reading)

    ids, want = [r[0] for r in walked], [r[0] for r in truth]
    if ids != want:
        raise _wrong_walk(page, walked, truth, yours)
    if [r[0] for r in rewalked] != want:
        keys = ", ".join(map(str, page.order_keys())) or "nothing"
        raise Fail(
            f"Walking all pages of user {HEAVY} showed every order once only because of the "
            f"plan PostgreSQL happened to pick: with another plan the order changed. "
            f"next_page orders by {keys}; rows that share a created_at need id as the last "
            f"key to come back in a fixed order.",
            yours,
        )
    sizes = {len(p) for p in _pages(walked)[:-1]}
    if sizes - {PAGE}:
        raise Fail(
            f"next_page returned pages of {', '.join(map(str, sorted(sizes)))} rows; the app "
            f"shows {PAGE} orders a page (LIMIT {PAGE}).",
            yours,
        )
    if max(costs[s] for s in COST_SAMPLES if s) > 2 * costs[0] + 8:
        raise _cost_grows(page, reading, yours, per_page, deep.evidence())
    return Pass(
        f"All {len(truth):,} orders of user {HEAVY}, each exactly once across "
        f"{len(truth) // PAGE} pages, at a steady cost ({reading} buffers).",
        per_page,
    )


COST_SAMPLES = [0, PAGE, 240, 500, 760, 960]  # rows already shown (0: the first page)


def _cursor(rows: list[Row], shown: int) -> dict[str, Any]:
    """What the app gives a page query after showing `shown` of these rows."""
    if not shown:
        return {"user_id": HEAVY}
    last_id, last_created = rows[shown - 1]
    return {"user_id": HEAVY, "last_created_at": last_created, "last_id": last_id, "offset": shown}


def _fetch_page(ctx: CheckContext, query: Query, params: dict[str, Any]) -> list[Row]:
    rows = ctx.fetch(query, params)
    if rows and not {"id", "created_at"} <= set(rows[0]):
        raise Fail(
            "The page query must return id and created_at: the next page starts after the "
            f"last row's (created_at, id). It returns: {', '.join(rows[0])}."
        )
    return [(r["id"], r["created_at"]) for r in rows]


def _walk(ctx: CheckContext, first: Query, page: LearnerQuery, truth: list[Row]) -> list[Row]:
    """Every row the app would show, page after page; stops at another user's order."""
    theirs = {r[0] for r in truth}
    seen: list[Row] = []
    rows = _fetch_page(ctx, first, _cursor(seen, 0))
    for _ in range(len(truth) // PAGE + 5):
        seen += rows
        if len(rows) < PAGE or any(r[0] not in theirs for r in rows):
            break
        rows = _fetch_page(ctx, page, _cursor(seen, len(seen)))
    return seen


def _pages(rows: list[Row]) -> list[list[Row]]:
    return [rows[i : i + PAGE] for i in range(0, len(rows), PAGE)]


def _wrong_walk(page: LearnerQuery, walked: list[Row], truth: list[Row], yours: Evidence) -> Fail:
    """What went wrong on the walk through all pages, worded from the query's ORDER BY."""
    theirs = {r[0] for r in truth}
    strangers = [r for r in walked if r[0] not in theirs]
    if strangers:
        return Fail(
            f"next_page returned orders that are not user {HEAVY}'s (order {strangers[0][0]} "
            f"is one): every page must stay within the user's orders. Keep WHERE user_id = "
            f":user_id next to the condition on the last row shown.",
            yours,
        )
    seen = {r[0] for r in walked}
    missing = [r for r in truth if r[0] not in seen]
    keys = page.order_keys()
    if missing and keys and "id" not in {k.expression for k in keys}:
        return Fail(
            f"Walking all pages of user {HEAVY} returned {len(seen):,} of {len(truth):,} "
            f"orders: {len(missing)} never appeared. next_page orders by "
            f"{', '.join(map(str, keys))}, so orders that share one created_at (this user's "
            f"come in batches of 25) come back in no fixed order, and the page boundary "
            f"cannot say which of them were shown. Make the order total: end the ORDER BY "
            f"with a column that is unique, and use the same columns in the condition on "
            f"the last row shown.",
            yours,
        )
    if missing:
        sample_id, sample_at = missing[0]
        return Fail(
            f"Walking all pages of user {HEAVY} returned {len(seen):,} of {len(truth):,} "
            f"orders: {len(missing)} never appeared (order {sample_id}, created "
            f"{sample_at:%Y-%m-%d %H:%M:%S}, is one). This user's orders come in batches "
            f"that share one created_at, and a page boundary fell inside a batch. The "
            f"condition on the last row shown must split such ties: compare created_at and "
            f"id together.",
            yours,
        )
    duplicates = len(walked) - len(seen)
    if duplicates:
        return Fail(
            f"Walking all pages of user {HEAVY} showed {duplicates} orders twice. The next "
            f"page must start strictly after the last row shown: use <, not <=.",
            yours,
        )
    return Fail(
        f"Walking all pages of user {HEAVY} returned every order, but not in the order "
        f"created_at DESC, id DESC (newest first, the higher id first among equals).",
        yours,
    )


def _cost_grows(
    page: LearnerQuery, reading: str, yours: Evidence, per_page: Evidence, deep: Evidence
) -> Fail:
    if "offset" in page.params or page.has("Offset"):
        return Fail(
            f"next_page still uses OFFSET: to show page {max(COST_SAMPLES) // PAGE + 1}, "
            f"PostgreSQL reads and throws away the {max(COST_SAMPLES)} rows before it, so the "
            f"cost grows with every page ({reading} buffers). Remember the last row shown and "
            f"ask for the rows after it instead (keyset pagination).",
            yours,
            per_page,
        )
    why = (
        "Your condition spells the tie-break with OR (created_at < x OR (created_at = x AND "
        "id < y)). It returns the right rows, but PostgreSQL cannot turn the OR into one "
        "range of the index, so it reads far more than a page. A row comparison of the "
        "same pair is one range the index can start from directly."
        if page.has("Or")
        else "Make the condition on the last row shown one the index can start from "
        "directly (the hints show one)."
    )
    return Fail(
        f"Every row came back exactly once, but later pages cost far more than the first "
        f"({reading} buffers). {why}",
        yours,
        per_page,
        deep,
    )


# ------------------------------------------------------------------ task 4

BATCH_USERS = [42, 4242, 7, 19_999, 15_000, 3, 101, 999_999, 77, 12_345, 100, 8_888]
PER_USER = 5
MAX_STATEMENTS = 3
RECENT = """
SELECT u.user_id, o.id, o.status, o.total, o.created_at
FROM unnest(%s::bigint[]) AS u(user_id) CROSS JOIN LATERAL (
    SELECT id, status, total, created_at FROM orders WHERE orders.user_id = u.user_id
    ORDER BY created_at DESC, id DESC LIMIT %s
) AS o
ORDER BY u.user_id, o.created_at DESC, o.id DESC
"""


@check("batched-recent-orders")
def batched_recent_orders(ctx: CheckContext) -> Pass:
    """Task 4: the same result as one query per user, in at most 3 statements."""
    run = ctx.call("solution.py", "recent_orders_for", BATCH_USERS, per_user=PER_USER)
    # Counted at the server's side, whatever client API or connection the code used.
    db = run.server["postgres"]
    sent, statements = statements_evidence(run, service="postgres"), db.statement_count
    if statements > MAX_STATEMENTS:
        raise Fail(
            f"recent_orders_for sent {statements} statements for {len(BATCH_USERS)} users: one "
            f"query per user, the N+1 pattern. Every statement is a round trip to the "
            f"database, wherever the loop lives (moving it into a helper function changes "
            f"nothing). Ask for all the users in one query, and keep the limit of "
            f"{PER_USER} orders per user in SQL.",
            sent,
        )
    expected: dict[int, list[Any]] = {u: [] for u in BATCH_USERS}
    for user_id, *order in ctx.query(RECENT, (BATCH_USERS, PER_USER)):
        expected[user_id].append(tuple(order))
    want, got = normalise(expected), run.value
    if not isinstance(got, dict):
        raise Fail(
            f"recent_orders_for must return a dict {{user_id: [rows]}}; it returned "
            f"{type(got).__name__}."
        )
    missing = [u for u in BATCH_USERS if str(u) not in got]
    if missing:
        empty = [u for u in missing if not want[str(u)]]
        extra = (
            f" User {empty[0]} has no orders: the original returned an empty list for such "
            f"users, so callers can rely on every key being there."
            if empty
            else ""
        )
        raise Fail(
            f"The result has no entry for user(s) {', '.join(map(str, missing))}.{extra}", sent
        )
    for user in BATCH_USERS:
        if got[str(user)] != want[str(user)]:
            raise Fail(
                f"For user {user} you returned {len(got[str(user)])} orders, and they differ "
                f"from the {len(want[str(user)])} newest (by created_at DESC, id DESC): got "
                f"{got[str(user)][:2]}..., expected {want[str(user)][:2]}....",
                sent,
            )
    needed = sum(len(v) for v in expected.values())
    if db.rows > 2 * needed:
        raise Fail(
            f"The answer is right, in {statements} statement(s), but it fetched "
            f"{db.rows:,} rows to return {needed}: it pulls every order of each user "
            f"and trims in Python. Heavy users have 1,000 orders. Keep the per-user limit in "
            f"the database, so that only the rows you return leave it.",
            sent,
        )
    return Pass(
        f"{statements} statement(s) for {len(BATCH_USERS)} users, {db.rows} rows "
        f"fetched, same result as one query per user.",
        sent,
    )
