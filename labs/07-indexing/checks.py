"""Checks for the indexing lab: read the catalog first, then the plans, then the data.

Never timings: on a shared laptop they lie. Plan shape, buffers read, statements sent
and rows fetched say the same thing every run.
"""

from __future__ import annotations

from typing import Any

from sdtutor.lab.checks import CheckContext, Evidence, Fail, IndexInfo, check, indexes_evidence
from sdtutor.lab.harness import normalise
from sdtutor.lab.sqlfiles import (
    SqlProblem,
    named_queries,
    parse_select,
    placeholders,
    sql_evidence,
    to_psycopg,
)

HEAVY_USER = 42  # one of users 1-100: 1,000 orders, in batches of 25 sharing a created_at
LIGHT_USER = 4242  # one of users 101-20000: 5 orders
LATEST = (
    "SELECT id, status, total, created_at FROM orders "
    "WHERE user_id = %s ORDER BY created_at DESC LIMIT 20"
)
QUEUE = (
    "SELECT id, user_id, total, created_at FROM orders "
    "WHERE status = 'pending' ORDER BY created_at LIMIT 50"
)
LATEST_MAX_BUFFERS = 40
QUEUE_MAX_BUFFERS = 80
ORDERS, USERS = 199_500, 20_000


def _usable(indexes: list[IndexInfo]) -> list[IndexInfo]:
    return [ix for ix in indexes if ix.valid]


@check("data-intact")
def data_intact(ctx: CheckContext) -> str:
    """The learner made queries fast without deleting data or breaking indexes."""
    orders, users = ctx.query("SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM users)")[
        0
    ]
    if (orders, users) != (ORDERS, USERS):
        raise Fail(
            f"The lab's data has changed: {orders:,} orders and {users:,} users, where the "
            f"lab started with {ORDERS:,} and {USERS:,}. Fast queries over less data prove "
            f"nothing. Run `sdtutor lab reset indexing` to restore it (your workspace files "
            f"are kept aside)."
        )
    invalid = [ix for ix in ctx.indexes("orders") if not ix.valid]
    if invalid:
        raise Fail(
            f"{', '.join(ix.name for ix in invalid)} is INVALID: a CREATE INDEX CONCURRENTLY "
            f"failed part-way, and PostgreSQL will not use it but still maintains it on every "
            f"write. DROP INDEX it and create it again.",
            indexes_evidence(invalid, "invalid indexes"),
        )
    return f"{orders:,} orders and {users:,} users, as seeded; every index is valid."


@check("latest-orders")
def latest_orders(ctx: CheckContext) -> tuple[str, list[Evidence]]:
    """A user's 20 latest orders come from an index that leads with user_id, unsorted."""
    ctx.analyze("orders")
    indexes = _usable(ctx.indexes("orders"))
    leading = [ix for ix in indexes if ix.leading == "user_id" and ix.predicate is None]
    catalog = indexes_evidence(indexes)
    if not leading:
        plan = ctx.explain(LATEST, (HEAVY_USER,))
        evidence = plan.evidence(f"plan for user {HEAVY_USER} (1,000 orders)")
        second = [ix for ix in indexes if "user_id" in ix.columns[1:]]
        if second:
            ix = second[0]
            raise Fail(
                f"Your index {ix.name} on ({', '.join(ix.columns)}) has user_id after "
                f"{ix.columns[0]}. A B-tree is sorted by its first column, so it cannot jump "
                f"to one user's orders: for user {HEAVY_USER} PostgreSQL read {plan.buffers} "
                f"buffers. Put the equality column first and the sort column second: an index "
                f"that leads with user_id, then created_at.",
                evidence,
                catalog,
            )
        partial = [ix for ix in indexes if ix.leading == "user_id"]
        extra = (
            f" ({partial[0].name} leads with user_id, but it is partial (WHERE "
            f"{partial[0].predicate}), so it only serves queries with that condition.)"
            if partial
            else ""
        )
        raise Fail(
            f"No index on orders starts with user_id, so finding one user's latest orders "
            f"means reading the whole table: {plan.buffers} buffers for user {HEAVY_USER}."
            f"{extra} Create an index that leads with user_id.",
            evidence,
            catalog,
        )
    names = {ix.name for ix in leading}
    readings = []
    for user, who in ((HEAVY_USER, "1,000 orders"), (LIGHT_USER, "5 orders")):
        plan = ctx.explain(LATEST, (user,))
        evidence = plan.evidence(f"plan for user {user} ({who})")
        used = plan.index_names() & names
        if not used:
            raise Fail(
                f"For user {user} ({who}) PostgreSQL does not use {', '.join(sorted(names))} "
                f"(it read {plan.buffers} buffers another way). Check that the index's key "
                f"columns fit the query: WHERE user_id = ?, ORDER BY created_at DESC.",
                evidence,
                catalog,
            )
        if plan.has("Sort", "Incremental Sort"):
            ix = next(i for i in leading if i.name in used)
            raise Fail(
                f"For user {user} ({who}) PostgreSQL finds the orders with {ix.name} on "
                f"({', '.join(ix.columns)}), but then sorts all of them (the Sort node) to "
                f"keep the newest 20. An index whose second column is created_at hands the "
                f"rows over already in order (read backward for DESC), so LIMIT 20 stops "
                f"after 20 entries.",
                evidence,
                catalog,
            )
        if plan.buffers > LATEST_MAX_BUFFERS:
            raise Fail(
                f"For user {user} ({who}) the query read {plan.buffers} buffers; a good index "
                f"needs a handful (at most {LATEST_MAX_BUFFERS}). Look at the plan below for "
                f"rows that are read and then thrown away.",
                evidence,
                catalog,
            )
        readings.append((user, who, plan))
    (_, _, heavy), (_, _, light) = readings
    used_name = sorted(heavy.index_names() & names)[0]
    return (
        f"{used_name} serves it with no Sort: {heavy.buffers} buffers for user {HEAVY_USER} "
        f"(1,000 orders), {light.buffers} for user {LIGHT_USER} (5 orders).",
        [heavy.evidence(f"plan for user {HEAVY_USER}")],
    )


def _only_pending(predicate: str) -> bool:
    """Whether an index predicate restricts rows to status = 'pending' (parsed, not grepped)."""
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(predicate, read="postgres")
    except sqlglot.errors.ParseError:
        return False
    conjuncts = list(tree.flatten()) if isinstance(tree, exp.And) else [tree]
    for term in conjuncts:
        if isinstance(term, exp.EQ):
            sides = [term.this, term.expression]
            sides = [s.this if isinstance(s, exp.Cast) else s for s in sides]
            columns = [s for s in sides if isinstance(s, exp.Column)]
            literals = [s for s in sides if isinstance(s, exp.Literal) and s.is_string]
            if (
                columns
                and literals
                and (columns[0].name, literals[0].this)
                == (
                    "status",
                    "pending",
                )
            ):
                return True
    return False


@check("pending-queue")
def pending_queue(ctx: CheckContext) -> tuple[str, list[Evidence]]:
    """The pending queue is served by a small partial index, in order."""
    ctx.analyze("orders")
    indexes = _usable(ctx.indexes("orders"))
    catalog = indexes_evidence(indexes)
    plan = ctx.explain(QUEUE)
    evidence = plan.evidence("plan for the pending queue")
    pending = ctx.query("SELECT count(*) FROM orders WHERE status = 'pending'")[0][0]
    partial = [ix for ix in indexes if ix.predicate and _only_pending(ix.predicate)]
    if not partial:
        full = [ix for ix in indexes if "status" in ix.columns and ix.predicate is None]
        if full:
            ix = full[0]
            raise Fail(
                f"{ix.name} indexes status for all {ORDERS:,} orders ({ix.size // 1024} kB), "
                f"although the queue only ever asks for the {pending:,} pending ones, and "
                f"every write to any order must update it. Make the index partial (WHERE "
                f"status = 'pending') so it holds only the rows the queue reads.",
                evidence,
                catalog,
            )
        others = [ix for ix in indexes if ix.predicate]
        extra = (
            f" ({others[0].name} is partial, but its condition, {others[0].predicate}, "
            f"is not status = 'pending'.)"
            if others
            else ""
        )
        raise Fail(
            f"No index covers only the pending orders, so the queue reads {plan.buffers} "
            f"buffers to find {pending:,} pending rows among {ORDERS:,}.{extra} Create a "
            f"partial index: CREATE INDEX ... WHERE status = 'pending'.",
            evidence,
            catalog,
        )
    names = {ix.name for ix in partial}
    if not plan.index_names() & names:
        raise Fail(
            f"You have a partial index for pending orders ({', '.join(sorted(names))}), but "
            f"the queue's plan does not use it. Key it on the column the queue sorts by.",
            evidence,
            catalog,
        )
    ix = next(i for i in partial if i.name in plan.index_names())
    if plan.has("Sort", "Incremental Sort"):
        raise Fail(
            f"{ix.name} finds the {pending:,} pending orders, but keyed on "
            f"({', '.join(ix.columns)}) it returns them in that order, so PostgreSQL still "
            f"sorts them all to find the oldest 50 (the Sort node). Key the partial index on "
            f"created_at, the column the queue orders by.",
            evidence,
            catalog,
        )
    pkey = next((i for i in indexes if i.primary), None)
    limit = (pkey.size // 10) if pkey else 512 * 1024
    if ix.size > limit:
        raise Fail(
            f"{ix.name} is {ix.size // 1024} kB, more than a tenth of the primary key "
            f"({limit * 10 // 1024} kB). A queue index should hold only pending orders and "
            f"the few columns the queue needs.",
            evidence,
            catalog,
        )
    if plan.buffers > QUEUE_MAX_BUFFERS:
        raise Fail(
            f"The queue read {plan.buffers} buffers (at most {QUEUE_MAX_BUFFERS} expected).",
            evidence,
            catalog,
        )
    return (
        f"{ix.name} holds only pending orders ({ix.size // 1024} kB, vs "
        f"{(pkey.size if pkey else 0) // 1024} kB for the primary key) and serves the queue "
        f"in order: {plan.buffers} buffers, no Sort.",
        [evidence],
    )


PAGE = 20
RESERVED = {"user_id", "last_created_at", "last_id", "offset"}


def _page(ctx: CheckContext, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    import psycopg

    try:
        cur = ctx.pg().execute(sql, params)
    except psycopg.Error as exc:
        raise Fail(f"PostgreSQL refused the query: {str(exc).strip().splitlines()[0]}") from None
    columns = [c.name for c in cur.description or []]
    if "id" not in columns or "created_at" not in columns:
        raise Fail(
            "The page query must return id and created_at: the next page starts after the "
            f"last row's (created_at, id). It returns: {', '.join(columns)}."
        )
    i, c = columns.index("id"), columns.index("created_at")
    return [(row[i], row[c]) for row in cur.fetchall()]


@check("keyset-pagination")
def keyset_pagination(ctx: CheckContext) -> tuple[str, list[Evidence]]:
    """next_page in queries.sql is keyset pagination: every row once, constant cost."""
    from sqlglot import exp

    queries = named_queries(ctx.read("queries.sql"))
    if "next_page" not in queries:
        raise Fail(
            "queries.sql has no query marked `-- name: next_page`. Keep the marker line above "
            "your query so the checker can find it."
        )
    nq = queries["next_page"]
    first = queries.get("first_page")
    try:
        tree = parse_select(nq, "queries.sql")
        first_tree = parse_select(first, "queries.sql") if first else None
    except SqlProblem as exc:
        raise Fail(str(exc)) from None
    yours = sql_evidence(nq, "your next_page")
    unknown = placeholders(tree) - RESERVED
    if unknown:
        raise Fail(
            f"next_page uses :{', :'.join(sorted(unknown))}, which the app cannot give. It "
            f"can give :user_id, :last_created_at, :last_id (the last row shown) and :offset.",
            yours,
        )
    order = (
        [(o.this.sql(), bool(o.args.get("desc"))) for o in tree.args["order"].expressions]
        if tree.args.get("order")
        else []
    )
    sql = to_psycopg(tree)
    first_sql = to_psycopg(first_tree) if first_tree is not None else None

    # Evidence under a known-good index, so this task can be graded on its own.
    conn = ctx.pg()
    conn.execute("BEGIN")
    try:
        has_index = any(
            ix.columns[:2] == ("user_id", "created_at") and ix.predicate is None
            for ix in _usable(ctx.indexes("orders"))
        )
        if not has_index:
            conn.execute("CREATE INDEX sdtutor_check_user_created ON orders (user_id, created_at)")
        expected = [
            (r[0], r[1])
            for r in ctx.query(
                "SELECT id, created_at FROM orders WHERE user_id = %s "
                "ORDER BY created_at DESC, id DESC",
                (HEAVY_USER,),
            )
        ]
        samples = [PAGE, 240, 500, 760, len(expected) - 2 * PAGE]
        buffers: dict[int, int] = {}
        for shown in [0, *samples]:
            if shown == 0:
                query = first_sql or LATEST
                params: Any = {"user_id": HEAVY_USER} if first_sql else (HEAVY_USER,)
            else:
                last_id, last_created = expected[shown - 1]
                query = sql
                params = {
                    "user_id": HEAVY_USER,
                    "last_created_at": last_created,
                    "last_id": last_id,
                    "offset": shown,
                }
            buffers[shown] = ctx.explain(query, params).buffers
        deep_plan = ctx.explain(
            sql,
            {
                "user_id": HEAVY_USER,
                "last_created_at": expected[PAGE - 1][1],
                "last_id": expected[PAGE - 1][0],
                "offset": PAGE,
            },
        )
    finally:
        conn.execute("ROLLBACK")

    reading = ", ".join(f"page {shown // PAGE + 1}: {b}" for shown, b in sorted(buffers.items()))
    buffer_evidence = Evidence("buffers read per page (user 42)", "text", reading)
    if tree.args.get("offset") is not None:
        deepest = max(samples)
        raise Fail(
            f"next_page still uses OFFSET: to show page {deepest // PAGE + 1}, PostgreSQL "
            f"reads and throws away the {deepest} rows before it, so the cost grows with "
            f"every page ({reading} buffers). Remember the last row shown and ask for the rows "
            f"after it instead: WHERE (created_at, id) < (:last_created_at, :last_id).",
            yours,
            buffer_evidence,
        )
    if "last_created_at" not in placeholders(tree):
        raise Fail(
            "next_page does not use :last_created_at, so it cannot continue from the last "
            "row shown. Keyset pagination filters on the sort key: rows strictly after "
            "(:last_created_at, :last_id).",
            yours,
        )
    if order[-1:] != [("id", True)] or order[:1] != [("created_at", True)]:
        raise Fail(
            "next_page must order by created_at DESC, id DESC. Without id as the last key, "
            "rows that share a created_at come back in no fixed order, and a page boundary "
            "between them loses or repeats rows.",
            yours,
        )

    # Walk every page as the app would, and compare with the truth.
    seen: list[Any] = []
    page = _page(ctx, first_sql or LATEST.replace("%s", "%(user_id)s"), {"user_id": HEAVY_USER})
    for _ in range(len(expected) // PAGE + 5):
        seen += page
        if len(page) < PAGE:
            break
        last_id, last_created = page[-1]
        page = _page(
            ctx,
            sql,
            {
                "user_id": HEAVY_USER,
                "last_created_at": last_created,
                "last_id": last_id,
                "offset": len(seen),
            },
        )
        if not page:
            break
    seen_ids = [row[0] for row in seen]
    want_ids = [row[0] for row in expected]
    if seen_ids != want_ids:
        duplicates = len(seen_ids) - len(set(seen_ids))
        missing = [r for r in expected if r[0] not in set(seen_ids)]
        if missing:
            sample_id, sample_at = missing[0]
            raise Fail(
                f"Walking all pages of user {HEAVY_USER} returned {len(set(seen_ids)):,} of "
                f"{len(expected):,} orders: {len(missing)} never appeared (order {sample_id}, "
                f"created {sample_at:%Y-%m-%d %H:%M:%S}, is one). This user's orders come in "
                f"batches that share one created_at, and a page boundary fell inside a "
                f"batch. Compare created_at and id together with a row comparison, "
                f"(created_at, id) < (:last_created_at, :last_id), so ties are split by id.",
                yours,
            )
        if duplicates:
            raise Fail(
                f"Walking all pages of user {HEAVY_USER} showed {duplicates} orders twice. "
                f"The next page must start strictly after the last row shown: use <, not <=.",
                yours,
            )
        raise Fail(
            f"Walking all pages of user {HEAVY_USER} returned every order, but not in the "
            f"order created_at DESC, id DESC.",
            yours,
        )

    worst = max(buffers[s] for s in samples)
    if worst > 2 * buffers[0] + 8:
        uses_or = any(True for _ in tree.find_all(exp.Or))
        why = (
            "Your condition spells the tie-break with OR (created_at < x OR (created_at = x "
            "AND id < y)). It returns the right rows, but PostgreSQL cannot turn the OR into "
            "one range of the index, so it reads far more than a page. Write it as a row "
            "comparison, (created_at, id) < (:last_created_at, :last_id), which the index "
            "can start from directly."
            if uses_or
            else "Make the condition one the index can start from: a row comparison, "
            "(created_at, id) < (:last_created_at, :last_id)."
        )
        raise Fail(
            f"Every row came back exactly once, but later pages cost far more than the first "
            f"({reading} buffers). {why}",
            yours,
            buffer_evidence,
            deep_plan.evidence("plan for page 2"),
        )
    return (
        f"All {len(expected):,} orders of user {HEAVY_USER}, each exactly once across "
        f"{len(expected) // PAGE} pages, at a steady cost ({reading} buffers).",
        [buffer_evidence],
    )


BATCH_USERS = [42, 4242, 7, 19_999, 15_000, 3, 101, 999_999, 77, 12_345, 100, 8_888]
PER_USER = 5
MAX_STATEMENTS = 3


@check("batched-recent-orders")
def batched_recent_orders(ctx: CheckContext) -> tuple[str, list[Evidence]]:
    """recent_orders_for fetches every user's orders in a bounded number of statements."""
    run = ctx.run_learner("solution.py", "recent_orders_for", BATCH_USERS, per_user=PER_USER)
    if run.timed_out:
        raise Fail(
            f"recent_orders_for did not finish: {run.error}. Look for a loop that "
            f"never ends, or a query that reads far more than it needs.",
            Evidence("its output", "text", run.output or "(none)"),
        )
    if not run.ok:
        raise Fail(
            f"recent_orders_for raised an error: {run.error}",
            Evidence("traceback", "text", run.traceback or run.output or run.error),
        )
    rows = ctx.query(
        "SELECT u.user_id, o.id, o.status, o.total, o.created_at "
        "FROM unnest(%s::bigint[]) AS u(user_id) CROSS JOIN LATERAL ("
        "  SELECT id, status, total, created_at FROM orders WHERE orders.user_id = u.user_id"
        "  ORDER BY created_at DESC, id DESC LIMIT %s) AS o "
        "ORDER BY u.user_id, o.created_at DESC, o.id DESC",
        (BATCH_USERS, PER_USER),
    )
    expected: dict[int, list[Any]] = {u: [] for u in BATCH_USERS}
    for user_id, *order in rows:
        expected[user_id].append(tuple(order))
    want = normalise(expected)
    got = run.value
    statements = len(run.statements)
    sent = Evidence(
        f"statements sent ({statements})",
        "text",
        "\n".join(f"{i + 1}. {' '.join(s.split())[:150]}" for i, s in enumerate(run.statements[:6]))
        + ("\n..." if statements > 6 else ""),
    )
    if statements > MAX_STATEMENTS:
        raise Fail(
            f"recent_orders_for sent {statements} statements for {len(BATCH_USERS)} users: one "
            f"query per user, the N+1 pattern. Every statement is a round trip to the "
            f"database, wherever the loop lives (moving it into a helper function changes "
            f"nothing). Ask for all users at once: WHERE user_id = ANY(%s) with a window "
            f"function, or unnest(...) with a LATERAL subquery that keeps the LIMIT per user.",
            sent,
        )
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
    if run.rows_fetched > 2 * needed:
        raise Fail(
            f"The answer is right, in {statements} statement(s), but it fetched "
            f"{run.rows_fetched:,} rows to return {needed}: it pulls every order of each user "
            f"and trims in Python. Heavy users have 1,000 orders. Keep the per-user limit in "
            f"the database: row_number() OVER (PARTITION BY user_id ORDER BY created_at DESC, "
            f"id DESC), or a LATERAL subquery with LIMIT.",
            sent,
        )
    return (
        f"{statements} statement(s) for {len(BATCH_USERS)} users, {run.rows_fetched} rows "
        f"fetched, same result as one query per user.",
        [sent],
    )
