"""Checks for the database-selection lab: what PostgreSQL holds after the learner's work.

Never the clock. Money is judged by the balances and the bank's overdraft audit after
eight processes have moved it about at once, and by what is left when a connection dies
in the middle of a transfer; the order of events there is made with a row lock the
checker holds, not with a sleep. The catalogue is judged by the rows the learner's query
returns and by its executed plan.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sdtutor.lab.checks import CheckContext, Evidence, Fail, Pass, check

FILE = "bank.py"
HARNESS = Path(__file__).with_name("harness.py")
HARNESS_FILE = "sdtutor_bank_harness.py"  # its name in the sandbox, beside bank.py

# ------------------------------------------------------------------ concurrent transfers
WORKERS, PER_WORKER = 8, 40
RICH = (101, 102, 103, 104, 105, 106)
"""Accounts with far more money than any transfer between them: every one must succeed."""
RICH_BALANCE, RICH_CENTS = 1_000_000, (100, 900)
POOR = (201, 202, 203, 204)
"""Accounts that run low: transfers between them are often refused, never overdrawn."""
POOR_BALANCE, POOR_CENTS = 6_000, (1_500, 4_500)
BUDGET = 5.0
"""Seconds after which a worker starts no more transfers. It bounds the work, never the
verdict: code that retries deadlocks (PostgreSQL takes a second to detect each) simply
moves fewer payments in the rush."""
LATENCY = 0.002
"""Seconds the proxy adds to each trip to PostgreSQL during the rush: it widens the gap
between a read and the write that follows, as a busy network would, so a race that can
happen does happen on any machine. It is imposed, never measured."""
DEADLOCK, SERIALIZATION = "40P01", "40001"

# ------------------------------------------------------------------ the cut connection
CUT_AMOUNT, CUT_BALANCE = 2_500, 10_000
CUTS = (
    (301, 302, "dst"),  # the checker holds the account the money goes to
    (303, 304, "src"),  # ... and, for a second transfer, the one it comes from
)
BLOCK_WAIT = 5.0
"""Seconds to wait for the learner's transfer to reach the account the checker holds."""
POLL = 0.02

# ------------------------------------------------------------------ the catalogue
QUERIES, QUERY = "queries.sql", "by_color"
COLOURS = ("teal", "mustard")
PRODUCTS = 60_000
TRUTH = "SELECT id FROM products WHERE attributes->>'color' = %s ORDER BY id"


# ------------------------------------------------------------------ helpers


def _balances(ctx: CheckContext, ids: tuple[int, ...] | list[int]) -> dict[int, int]:
    rows = ctx.query("SELECT id, balance FROM accounts WHERE id = ANY(%s)", (list(ids),))
    return {int(i): int(b) for i, b in rows}


def _set_balances(ctx: CheckContext, balances: dict[int, int]) -> None:
    """Give the accounts a check uses known balances (earlier runs may have moved them)."""
    ctx.query(
        "UPDATE accounts AS a SET balance = v.balance "
        "FROM unnest(%s::bigint[], %s::bigint[]) AS v(id, balance) WHERE a.id = v.id",
        (list(balances), list(balances.values())),
    )


def _total(ctx: CheckContext) -> int:
    return int(ctx.value("SELECT coalesce(sum(balance), 0) FROM accounts"))


def _deadlocks(ctx: CheckContext) -> int:
    """Deadlocks PostgreSQL has detected in the lab's database (a cumulative statistic)."""
    ctx.query("SELECT pg_stat_clear_snapshot()")
    found = ctx.value("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
    return int(found or 0)


def _cents(n: int) -> str:
    return f"{n:,} cents"


def _in_background(job: Callable[[], Any]) -> Future[Any]:
    """Start a learner call on another thread while the check arranges what happens next."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bank-check")
    future = pool.submit(job)
    pool.shutdown(wait=False)
    return future


def _blocked_on_me(ctx: CheckContext, job: Future[Any], limit: float, wanted: int = 1) -> list[int]:
    """Backends waiting for a lock this checker holds (pg_locks is read live), once
    `wanted` of them wait, or whatever waits when the job ends or `limit` seconds pass."""
    deadline = time.monotonic() + limit
    pids: list[int] = []
    while time.monotonic() < deadline and not job.done():
        rows = ctx.query(
            "SELECT DISTINCT pid FROM pg_locks WHERE NOT granted "
            "AND pg_backend_pid() = ANY(pg_blocking_pids(pid))"
        )
        pids = [int(p) for (p,) in rows]
        if len(pids) >= wanted:
            break
        time.sleep(POLL)
    return pids


def _plans() -> list[list[list[int]]]:
    """Each worker's transfers: rich and poor pairs in turn, the same every run."""
    rng = random.Random(2)
    plans = []
    for _ in range(WORKERS):
        plan = []
        for n in range(PER_WORKER):
            pool, cents = (RICH, RICH_CENTS) if n % 2 == 0 else (POOR, POOR_CENTS)
            src, dst = rng.sample(pool, 2)
            plan.append([src, dst, rng.randint(*cents)])
        plans.append(plan)
    return plans


def _table(balances: dict[int, tuple[int, int, int]], title: str) -> Evidence:
    rows = [
        (i, f"{start:,}", f"{want:,}", f"{got:,}") for i, (start, want, got) in balances.items()
    ]
    return Evidence(title, "table", (("account", "before", "expected", "after"), rows))


# ------------------------------------------------------------------ task 1: the rush


@check("concurrent-transfers")
def concurrent_transfers(ctx: CheckContext) -> Pass:
    """Eight workers at once: the total stays put, no balance goes below zero, and no
    transfer is lost to a deadlock or a serialization failure."""
    ctx.read(FILE)  # a missing file fails here, with what to do
    accounts = (*RICH, *POOR)
    start = {a: RICH_BALANCE for a in RICH} | {a: POOR_BALANCE for a in POOR}
    _set_balances(ctx, start)
    ctx.query("DELETE FROM overdrafts")
    total_before = _total(ctx)
    deadlocks_before = _deadlocks(ctx)
    plans = _plans()
    proxy = ctx.proxy("postgres")
    proxy.latency = LATENCY
    rush = ctx.workers(
        HARNESS_FILE,
        "transfers",
        WORKERS,
        clients=("postgres",),
        args_for=lambda i: [FILE, plans[i], BUDGET],
        files={HARNESS_FILE: HARNESS},
        proxies={"postgres": proxy},
    )
    proxy.latency = 0
    sent = sum(len(p) for p in plans)
    for n, run in enumerate(rush.runs, start=1):
        if run.timed_out or run.limit:
            raise Fail(
                f"Worker {n} of {WORKERS} did not finish its {PER_WORKER} transfers in time "
                f"({run.limit or 'timeout'}). Is a transfer waiting for a lock that is never "
                f"released (a transaction left open), or retrying forever?",
                Evidence("its output", "text", run.output or "(none)"),
            )
        if not run.ok:
            raise Fail(
                f"Worker {n} could not run bank.py: {run.error}",
                Evidence("traceback", "text", run.traceback or run.output or run.error),
            )
    done = [entry for run in rush.runs for entry in (run.value or [])]
    after = _balances(ctx, accounts)
    total_after = _total(ctx)
    overdrafts = ctx.query(
        "SELECT account_id, min(balance), count(*) FROM overdrafts GROUP BY account_id "
        "ORDER BY account_id"
    )
    errors = [e for e in done if "error" in e]
    moved = [e for e in done if e.get("result") is True]
    refused = [e for e in done if e.get("result") is False]
    expected = dict(start)
    for e in moved:
        expected[e["src"]] -= e["cents"]
        expected[e["dst"]] += e["cents"]
    table = _table(
        {a: (start[a], expected[a], after.get(a, 0)) for a in accounts},
        "balances (expected: from the transfers that returned True)",
    )
    summary = Evidence(
        "what the workers reported",
        "text",
        f"{len(done)} of {sent} transfers ran: {len(moved)} returned True, {len(refused)} "
        f"False, {len(errors)} raised.",
    )

    if total_after != total_before:
        diff = total_after - total_before
        raise Fail(
            f"Money {'appeared' if diff > 0 else 'vanished'}: the accounts held "
            f"{_cents(total_before)} in all before {WORKERS} workers ran {sent} transfers "
            f"at once, and {_cents(total_after)} after ({diff:+,}). A transfer must take "
            f"from one account exactly what it gives to the other, or do nothing at all.",
            table,
            summary,
        )
    if overdrafts:
        account, lowest, times = overdrafts[0]
        others = f" ({len(overdrafts) - 1} other account(s) too)" if len(overdrafts) > 1 else ""
        raise Fail(
            f"Account {account} went below zero{others}, down to {_cents(int(lowest))}, "
            f"as the bank's audit shows ({times} overdrawn balance(s)). Two transfers "
            f"from the same account each read a balance that covered them, then both took "
            f"the money: the read and the write are separate steps, and another transfer "
            f"can act in between. Make the check and the debit one step, or lock the row "
            f"between them.",
            Evidence(
                "overdrafts recorded by the audit trigger",
                "table",
                (
                    ("account", "lowest balance", "times"),
                    [(a, f"{int(b):,}", t) for a, b, t in overdrafts],
                ),
            ),
            summary,
        )
    if errors:
        raise _lost(errors, summary)
    odd = [e for e in done if "result" in e and not isinstance(e["result"], bool)]
    if odd:
        raise Fail(
            f"transfer returned {odd[0]['result']} for {odd[0]['src']} -> {odd[0]['dst']}: "
            f"it must return True when the money moved and False when the account had too "
            f"little.",
            summary,
        )
    poor_refusals = [e for e in refused if e["src"] in RICH]
    if poor_refusals:
        e = poor_refusals[0]
        raise Fail(
            f"{len(poor_refusals)} transfer(s) between accounts holding about "
            f"{_cents(RICH_BALANCE)} returned False (account {e['src']} -> {e['dst']}, "
            f"{_cents(e['cents'])}, is one), though neither could run short. A transfer "
            f"that gives up when it meets a busy row, a deadlock or a serialization failure "
            f"loses the payment as surely as one that raises: wait for the row, avoid the "
            f"conflict, or retry it.",
            table,
            summary,
        )
    wrong = {a for a in accounts if after.get(a) != expected[a]}
    if wrong:
        raise Fail(
            f"The balances do not match what transfer() reported: account "
            f"{min(wrong)} holds {_cents(after.get(min(wrong), 0))}, but the transfers "
            f"that returned True add up to {_cents(expected[min(wrong)])}. A transfer that "
            f"returns True must have moved the money, and one that returns False must have "
            f"changed nothing.",
            table,
            summary,
        )
    deadlocks = _deadlocks(ctx) - deadlocks_before
    note = (
        f" PostgreSQL detected {deadlocks} deadlock(s) and your code retried them; taking "
        f"the locks in one order avoids them, and the second each one costs."
        if deadlocks > 0
        else ""
    )
    return Pass(
        f"{WORKERS} workers ran {len(done)} transfers at once: {len(moved)} moved money, "
        f"{len(refused)} were refused for lack of funds, none was lost; the total stayed "
        f"{_cents(total_after)} and no balance went below zero.{note}",
        table,
    )


def _lost(errors: list[dict[str, Any]], summary: Evidence) -> Fail:
    """Why transfers raised, worded from their SQLSTATE."""
    states = [e.get("sqlstate") for e in errors]
    shown = Evidence(
        "transfers that raised (each stops its worker)",
        "text",
        "\n".join(f"{e['src']} -> {e['dst']}, {e['cents']:,} cents: {e['error']}" for e in errors),
    )
    if DEADLOCK in states:
        return Fail(
            f"{states.count(DEADLOCK)} transfer(s) failed with 'deadlock detected' (SQLSTATE "
            f"{DEADLOCK}): one transfer held account A's row and waited for B's, while "
            f"another held B's and waited for A's. PostgreSQL broke the circle by aborting "
            f"one of them, and the error reached the caller: that payment is lost. Take the "
            f"two rows' locks in the same order in every transfer, whichever way the money "
            f"goes, or retry the whole transaction when it happens.",
            shown,
            summary,
        )
    if SERIALIZATION in states:
        return Fail(
            f"{states.count(SERIALIZATION)} transfer(s) failed with 'could not serialize "
            f"access' (SQLSTATE {SERIALIZATION}): at Repeatable Read or Serializable, "
            f"PostgreSQL aborts a transaction that read a row another one changed. That is "
            f"the isolation level doing its job; the caller's part is to run the whole "
            f"transaction again from the start (a few attempts). Without that retry the "
            f"payment is lost.",
            shown,
            summary,
        )
    first = errors[0]
    return Fail(
        f"{len(errors)} transfer(s) raised: {first['src']} -> {first['dst']} "
        f"({_cents(first['cents'])}) raised {first['error']}. A transfer between existing "
        f"accounts may only refuse (return False) for lack of funds.",
        shown,
        summary,
    )


# ------------------------------------------------------------------ task 2: the cut


@check("crash-mid-transfer")
def crash_mid_transfer(ctx: CheckContext) -> Pass:
    """A connection that dies between the two updates leaves both accounts as they were.

    Two transfers run at once, in two processes: the checker holds the row of the account
    the first one pays into, and of the account the second one pays from, so each waits
    after whatever it did first. Then their connections are cut.
    """
    ctx.read(FILE)
    accounts = [a for src, dst, _ in CUTS for a in (src, dst)]
    _set_balances(ctx, {a: CUT_BALANCE for a in accounts})
    held = [dst if which == "dst" else src for src, dst, which in CUTS]
    proxy = ctx.proxy("postgres")
    with ctx.scratch() as conn:
        conn.execute("SELECT 1 FROM accounts WHERE id = ANY(%s) FOR UPDATE", (held,))
        job = _in_background(
            lambda: ctx.workers(
                FILE,
                "transfer",
                len(CUTS),
                clients=("postgres",),
                args_for=lambda i: [CUTS[i][0], CUTS[i][1], CUT_AMOUNT],
                proxies={"postgres": proxy},
            )
        )
        waiting = _blocked_on_me(ctx, job, BLOCK_WAIT, wanted=len(CUTS))
        ended_early = job.done()
        before_cut = list(proxy.stats.statements)
        # The app server dies: its connections go, and the server ends the sessions (as
        # it does once it notices); the statements that were waiting never run.
        proxy.drop_connections()
        for pid in waiting:
            conn.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
    runs = job.result().runs
    if ended_early and not waiting:
        raise _gave_up(runs, held)
    after = _balances(ctx, accounts)
    outcomes = []
    for n, (src, dst, _) in enumerate(CUTS):
        lost, gained = CUT_BALANCE - after[src], after[dst] - CUT_BALANCE
        if (lost, gained) not in ((0, 0), (CUT_AMOUNT, CUT_AMOUNT)):
            run = runs[n] if n < len(runs) else None
            raise _torn(src, dst, held[n], bool(waiting), lost, gained, before_cut, run)
        outcomes.append(
            f"account {held[n]} ({'untouched' if lost == 0 else 'moved whole after a retry'})"
        )
    return Pass(
        "The connections were cut while transfers waited for "
        + " and for ".join(outcomes)
        + ": the money moved whole or not at all.",
        Evidence(
            "statements that reached PostgreSQL before the cut (both transfers, interleaved)",
            "text",
            _numbered(before_cut),
        ),
    )


def _gave_up(runs: list[Any], held: list[int]) -> Fail:
    """The transfers ended while the checker held their rows, without waiting for them."""
    broken = [run for run in runs if not run.ok]
    if broken:
        run = broken[0]
        return Fail(
            f"transfer raised before it reached accounts {held[0]} and {held[1]}, whose "
            f"rows the checker held: {run.error}",
            Evidence("traceback", "text", run.traceback or run.output or run.error),
        )
    values = ", ".join(str(run.value) for run in runs)
    return Fail(
        f"transfer returned ({values}) while the checker held the rows of accounts "
        f"{held[0]} and {held[1]}, without waiting for them. Every account had enough "
        f"money: a busy row means wait (or retry), not refuse.",
    )


def _numbered(statements: list[str]) -> str:
    lines = [f"{i}. {' '.join(s.split())[:150]}" for i, s in enumerate(statements, 1)]
    return "\n".join(lines) or "(none)"


def _torn(
    src: int,
    dst: int,
    holding: int,
    waited: bool,
    lost: int,
    gained: int,
    before_cut: list[str],
    run: Any,
) -> Fail:
    """A transfer that the cut left half done."""
    where = (
        f"the checker held account {holding}'s row (as another transfer might), so your "
        f"transfer waited for it; then its connection was cut (an app server dying, a "
        f"network failing)"
        if waited
        else f"the checker held account {holding}'s row and cut the connection"
    )
    if lost and not gained:
        what = (
            f"Account {src} had already lost {_cents(lost)} and account {dst} never got "
            f"them: the money vanished"
        )
    elif gained and not lost:
        what = (
            f"Account {dst} had already got {_cents(gained)} that account {src} never "
            f"paid: money appeared from nowhere"
        )
    else:
        what = f"account {src} changed by {-lost:+,} cents and account {dst} by {gained:+,}"
    return Fail(
        f"Transfer {src} -> {dst} of {_cents(CUT_AMOUNT)}: {where}. {what}. Each UPDATE "
        f"that ran on its own (autocommit) was final the moment it ran. Run both updates "
        f"in one transaction: when the connection dies before COMMIT, PostgreSQL undoes "
        f"everything the transaction did.",
        _table(
            {
                src: (CUT_BALANCE, CUT_BALANCE, CUT_BALANCE - lost),
                dst: (CUT_BALANCE, CUT_BALANCE, CUT_BALANCE + gained),
            },
            "balances (expected: as they were, or the transfer whole)",
        ),
        Evidence(
            "statements that reached PostgreSQL before the cut (both transfers, interleaved)",
            "text",
            _numbered(before_cut),
        ),
        Evidence("transfer then raised", "text", (run.error if run else "") or "(nothing)"),
    )


# ------------------------------------------------------------------ task 3: the catalogue


@check("attribute-filter")
def attribute_filter(ctx: CheckContext) -> Pass:
    """by_color returns the right products, and an index on attributes finds them."""
    ctx.analyze("products")
    count = ctx.value("SELECT count(*) FROM products")
    if count != PRODUCTS:
        raise Fail(
            f"The catalogue holds {count:,} products where the lab seeded {PRODUCTS:,}. An "
            f"index proves little over other data: run `sdtutor lab reset database-selection` "
            f"(your files are kept aside)."
        )
    query = ctx.queries(QUERIES)[QUERY]
    found = {}
    for colour in COLOURS:
        truth = [int(i) for (i,) in ctx.query(TRUTH, (colour,))]
        rows = ctx.fetch(query, {"color": colour})
        if rows and "id" not in rows[0]:
            raise Fail(
                f"{QUERY} must return the products' id (it returns: {', '.join(rows[0])}).",
                query.evidence(),
            )
        got = sorted(int(r["id"]) for r in rows)
        if got != truth:
            missing = sorted(set(truth) - set(got))
            extra = sorted(set(got) - set(truth))
            detail = (
                f"product {missing[0]} is {colour} and is missing"
                if missing
                else f"product {extra[0]} is not {colour}"
                if extra
                else "some products come back more than once"
            )
            raise Fail(
                f"For color = '{colour}', {QUERY} returned {len(got)} rows where "
                f"{len(truth)} products have that colour ({detail}). Compare the attribute's "
                f"value, not the text of the whole document.",
                query.evidence(),
            )
        found[colour] = len(truth)
    indexes = ctx.indexes("products").valid()
    on_attributes = [
        ix
        for ix in indexes
        if any("attributes" in c for c in ix.columns) or "attributes" in (ix.predicate or "")
    ]
    plans = []
    for colour in COLOURS:
        plan = ctx.plan(query, {"color": colour}, title=f"plan for color = '{colour}'")
        used = plan.used_index(on_attributes)
        if used is None:
            plan.fail(_no_index(plan, on_attributes, colour, found[colour]))
        plan.must_not_seq_scan(
            why=f"For color = '{colour}' the plan reads {used}, but also reads the whole "
            f"products table (a Seq Scan)."
        )
        plan.rows_scanned_at_most(
            4 * found[colour] + 200,
            why=f"For color = '{colour}' the plan reads {used} but still looks at "
            f"{plan.rows_scanned:,} rows to return {found[colour]}: the index does not narrow "
            f"the search to the {colour} products.",
        )
        plans.append((colour, used, plan))
    _, used, plan = plans[0]
    return Pass(
        f"{QUERY} returns the {found[COLOURS[0]]} teal and {found[COLOURS[1]]} mustard "
        f"products, and {used} finds them: {plan.rows_scanned} rows looked at for teal "
        f"({plan.buffers} buffers), of {PRODUCTS:,} products.",
        plan.evidence(),
    )


def _filters(plan: Any) -> str:
    """The conditions the plan's scans applied, as PostgreSQL prints them."""
    return " ".join(
        str(n.get(k, "")) for n in plan.nodes() for k in ("Filter", "Index Cond", "Recheck Cond")
    )


def _no_index(plan: Any, on_attributes: list[Any], colour: str, matching: int) -> str:
    """Why no index on attributes serves the query, worded from the catalog and the plan."""
    seen = (
        f"To find {matching} {colour} products, PostgreSQL looked at "
        f"{plan.rows_scanned:,} rows ({plan.buffers:,} buffers)."
    )
    conditions = _filters(plan)
    partial = [ix for ix in on_attributes if ix.partial]
    if partial:
        ix = partial[0]
        return (
            f"{seen} Your index {ix.name} holds only the rows WHERE {ix.predicate}, so it "
            f"serves that one value and no other. The filter takes any colour: index the "
            f"attribute for every product."
        )
    gin = [ix for ix in on_attributes if " gin " in ix.definition.lower()]
    expressions = [ix for ix in on_attributes if ix not in gin]
    if gin and "@>" not in conditions:
        ix = gin[0]
        return (
            f"{seen} Your GIN index {ix.name} holds every key and value of attributes, "
            f"but it can only answer the operators of its class, such as containment "
            f"(attributes @> a document). The query's condition, {conditions.strip() or '?'}, "
            f"is not one of them, so the index cannot help. Ask the question in a form "
            f"the GIN index serves."
        )
    if expressions:
        ix = expressions[0]
        return (
            f"{seen} Your index {ix.name} is on ({', '.join(ix.columns)}), but the query "
            f"filters on {conditions.strip() or 'something else'}. PostgreSQL uses an "
            f"index on an expression only when the query has that very expression (->> "
            f"gives text, -> gives jsonb: they differ), or, for a GIN index, an operator "
            f"it serves."
        )
    return (
        f"{seen} No index on products covers attributes, so every query for a colour "
        f"reads the whole catalogue. A jsonb column can be indexed as a whole (a GIN "
        f"index, which serves containment: attributes @> ...) or one key at a time (a "
        f"B-tree on the expression attributes->>'color'). Put it in catalog.sql."
    )
