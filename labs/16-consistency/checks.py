"""Checks for the consistency lab: money that appears or vanishes, and what is left prepared.

Never timings. A lost update shows as payouts the balance never lost; a broken transfer
as money that left one bank and reached no other; a coordinator that commits too early
as a crash the decision log cannot repair; a recovery that guesses as a transfer applied
on one side only. Every check reads balances, the decision log and pg_prepared_xacts
from the servers themselves, and the statements the learner's code sent, counted at the
wire.

Where a check needs a crash at a set point, it makes the point with a lock it holds (on
the decision log) and waits until PostgreSQL shows the learner's statement waiting on
it, then cuts the learner's code off from both servers: a sleep would only make it likely.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from sdtutor.lab.checks import CheckContext, Evidence, Fail, Pass, check

BANKS = ("bank_a", "bank_b")

# Task 1: twenty ATMs, one account, more asked for than it holds.
ATM_ACCOUNT = 1
ATMS, ATM_AMOUNT, ATM_START = 20, 100, 1000
ATM_LATENCY = 0.02
"""Seconds the proxy adds to each trip to bank A while the ATMs run: it widens the window
between a read and the write that follows, as a busy network would, so a lost update
shows on any machine. Imposed, never measured."""

# Task 2: which accounts each transfer uses (different ones per check).
OK_FROM, OK_TO = 2, 2
POOR_FROM, POOR_TO, TOO_MUCH = 4, 4, 5000  # bank A says no: not enough money
FROZEN_FROM, FROZEN_TO = 5, 13  # bank B votes no at PREPARE: account 13 is frozen
AMOUNT = 50

# Task 2, the crash: the coordinator crashes while it writes its decision.
CRASH_FROM, CRASH_TO = 6, 6

# Task 3: transfers a crashed coordinator left behind, on each side of the decision:
# (name, bank A's part, bank B's part, decided). A part is "prepared", "committed" or
# "none" (never prepared: the coordinator died before, or the bank voted no).
STRANDED = (
    ("undecided", "prepared", "prepared", False),
    ("decided", "prepared", "prepared", True),
    ("a-committed", "committed", "prepared", True),
    ("b-committed", "prepared", "committed", True),
    ("a-only", "prepared", "none", False),
    ("b-only", "none", "prepared", False),
)
STRANDED_FIRST = 20
"""Account ids of the stranded transfers: 20, 21, ... (the same id at both banks)."""
POLL = 0.05


# ------------------------------------------------------------------ helpers


def gid(transfer_id: str, bank: str) -> str:
    """The lab's gid of one bank's part of a transfer (as transfer.py defines it)."""
    return f"{transfer_id}@{bank}"


def _token() -> str:
    """A fresh prefix for transfer ids: a gid must be unique on its whole server."""
    return f"chk{secrets.token_hex(3)}"


def _balance(ctx: CheckContext, bank: str, account: int) -> int:
    return int(
        ctx.pg(bank).execute("SELECT balance FROM accounts WHERE id = %s", (account,)).fetchone()[0]
    )


def _prepared(ctx: CheckContext, bank: str) -> list[str]:
    """The gids left prepared in this bank's database (the view shows the whole server)."""
    rows = ctx.pg(bank).execute(
        "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() ORDER BY gid"
    )
    return [str(r[0]) for r in rows.fetchall()]


def _decided(ctx: CheckContext, transfer_id: str) -> bool:
    row = (
        ctx.pg("bank_a")
        .execute("SELECT 1 FROM decisions WHERE transfer_id = %s", (transfer_id,))
        .fetchone()
    )
    return row is not None


def _release(ctx: CheckContext) -> list[str]:
    """Roll back whatever is left prepared in the lab's databases (a check's leftovers,
    an earlier crash, a try in `lab shell`), so that no row lock outlives a check."""
    from psycopg import sql

    gone = []
    for bank in BANKS:
        for g in _prepared(ctx, bank):
            ctx.pg(bank).execute(sql.SQL("ROLLBACK PREPARED {}").format(sql.Literal(g)))
            gone.append(g)
    return gone


def _first_line(text: str | None) -> str:
    """The first line of an error (psycopg adds DETAIL lines below it), no final period."""
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[0].strip().rstrip(".") if lines else "(no message)"


def _require_ran(run: Any, call: str) -> None:
    """Fail when a learner call hung, hit a limit or raised."""
    if run.timed_out:
        raise Fail(
            f"{call} did not return within {run.limit or 'its time limit'}: is it waiting "
            f"on a lock that a transaction of its own (or one left prepared) still holds?",
            Evidence("its output", "text", run.output or "(none)"),
        )
    if not run.ok:
        raise Fail(
            f"{call} raised {_first_line(run.error)}",
            Evidence("traceback", "text", run.traceback or run.error or "(none)"),
        )


def _statements(run: Any, bank: str) -> list[str]:
    stats = run.server.get(bank)
    return [" ".join(s.split()) for s in stats.statements] if stats else []


def _has(statements: Iterable[str], pattern: str) -> bool:
    return any(re.search(pattern, s, re.IGNORECASE) for s in statements)


def _statements_evidence(run: Any, title: str) -> Evidence:
    """Each distinct statement a bank received, in order of first sight, with its count."""
    counts: dict[tuple[str, str], int] = {}
    for bank in BANKS:
        for s in _statements(run, bank):
            counts[(bank, s[:150])] = counts.get((bank, s[:150]), 0) + 1
    rows = [(bank, s, n) for (bank, s), n in counts.items()]
    return Evidence(
        title, "table", (("bank", "statement", "times"), rows[:30] or [("", "(none)", 0)])
    )


def _in_background(job: Callable[[], Any]) -> Future[Any]:
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="consistency-check")
    future = pool.submit(job)
    pool.shutdown(wait=False)
    return future


def _waiting_on_me(conn: Any) -> list[int]:
    """Backends waiting on a lock this connection holds (pg_locks is read live)."""
    rows = conn.execute(
        "SELECT DISTINCT pid FROM pg_locks WHERE NOT granted "
        "AND pg_backend_pid() = ANY(pg_blocking_pids(pid))"
    ).fetchall()
    return [int(r[0]) for r in rows]


# ------------------------------------------------------------------ task 1


@check("no-lost-update")
def no_lost_update(ctx: CheckContext) -> Pass:
    """Twenty ATMs at once: what they paid out is exactly what the balance lost."""
    _release(ctx)  # a transaction prepared by hand on the account would hold its row
    bank = ctx.pg("bank_a")
    bank.execute("UPDATE accounts SET balance = %s WHERE id = %s", (ATM_START, ATM_ACCOUNT))
    slow = ctx.proxy("bank_a")
    slow.latency = ATM_LATENCY
    crowd = ctx.workers(
        "atm.py",
        "withdraw",
        ATMS,
        clients=("bank_a",),
        args_for=lambda i: [ATM_ACCOUNT, ATM_AMOUNT],
        proxies={"bank_a": slow},
    )
    end = _balance(ctx, "bank_a", ATM_ACCOUNT)
    broken = [r for r in crowd.runs if r.timed_out or not r.ok]
    if broken:
        run = broken[0]
        error = _first_line(run.error)
        full = (run.error or "").lower()
        if run.timed_out:
            why = (
                "one of them never returned: is a lock taken and never released (a "
                "transaction left open)?"
            )
        elif "serializ" in full or "concurrent update" in full:
            why = (
                "under Repeatable Read or Serializable, PostgreSQL refuses a transaction "
                "that would act on data another one changed meanwhile, and it is the "
                "application's job to run such a transaction again from the start"
            )
        elif "balance_not_negative" in full or "check constraint" in full:
            why = (
                "the constraint caught a withdrawal that would have made the balance "
                "negative: the balance was checked, then changed by another ATM, then "
                "written. The check and the write must see the same balance"
            )
        else:
            why = "an ATM must answer True or False, not fail"
        raise Fail(
            f"{len(broken)} of {ATMS} concurrent withdraw({ATM_ACCOUNT}, {ATM_AMOUNT}) calls "
            f"failed with: {error}. {why[0].upper() + why[1:]}.",
            Evidence("traceback", "text", run.traceback or run.error or "(timed out)"),
        )
    paid = sum(1 for r in crowd.runs if r.value is True)
    odd = [r.value for r in crowd.runs if r.value not in (True, False)]
    if odd:
        raise Fail(
            f"withdraw returned {odd[0]!r}: it must return True (paid) or False (refused), "
            f"so that the ATM knows whether to hand out the money."
        )
    lost = ATM_START - end
    table = Evidence(
        "the account after the ATMs",
        "table",
        (
            ("", "value"),
            [
                ("balance before", ATM_START),
                (f"ATMs that paid {ATM_AMOUNT}", paid),
                ("money paid out", paid * ATM_AMOUNT),
                ("balance after", end),
                ("money the balance lost", lost),
            ],
        ),
    )
    if paid * ATM_AMOUNT != lost:
        raise Fail(
            f"{ATMS} ATMs withdrew {ATM_AMOUNT} each from account {ATM_ACCOUNT} (balance "
            f"{ATM_START}) at the same moment: {paid} paid out, {paid * ATM_AMOUNT} in all, "
            f"but the balance fell only to {end}, so {paid * ATM_AMOUNT - lost} was paid that "
            f"no balance lost. That is the lost update: several ATMs read the same balance, "
            f"each computed its own new balance from it, and each write overwrote the "
            f"others'. Under Read Committed nothing stops this, not even a transaction "
            f"around the read and the write; the balance must not change between the read "
            f"that decides and the write.",
            table,
            _statements_evidence(crowd, "what the twenty ATMs sent"),
        )
    if end >= ATM_AMOUNT:
        raise Fail(
            f"{ATMS} ATMs asked for {ATM_AMOUNT} each from an account holding {ATM_START}: "
            f"only {paid} paid, and {end} is still there, so customers were turned away "
            f"from money they had. An ATM that finds the row busy must wait for it (or try "
            f"again), not refuse.",
            table,
        )
    return Pass(
        f"{ATMS} concurrent ATMs: {paid} paid {ATM_AMOUNT} each and the rest were refused; "
        f"the balance went from {ATM_START} to {end}, exactly what was paid out.",
        table,
    )


# ------------------------------------------------------------------ task 2


@check("all-or-nothing")
def all_or_nothing(ctx: CheckContext) -> Pass:
    """Three transfers: one that can happen, one each bank refuses; both banks agree."""
    _release(ctx)
    token = _token()
    cases = [
        ("ok", OK_FROM, OK_TO, AMOUNT, True, "both banks can do their part"),
        (
            "poor",
            POOR_FROM,
            POOR_TO,
            TOO_MUCH,
            False,
            f"bank A refuses: account {POOR_FROM} holds less than {TOO_MUCH}",
        ),
        (
            "frozen",
            FROZEN_FROM,
            FROZEN_TO,
            AMOUNT,
            False,
            f"bank B votes no: account {FROZEN_TO} is frozen, which its deferred "
            f"constraint trigger finds only at COMMIT or PREPARE TRANSACTION",
        ),
    ]
    before = {
        name: (_balance(ctx, "bank_a", src), _balance(ctx, "bank_b", dst))
        for name, src, dst, *_ in cases
    }
    # The three run at once (separate accounts, so they never wait on each other): what
    # each bank received is counted over all three.
    crowd = ctx.workers(
        "transfer.py",
        "transfer_across",
        len(cases),
        clients=BANKS,
        args_for=lambda i: [f"{token}-{cases[i][0]}", *cases[i][1:4]],
    )
    try:
        seen = []
        for (name, src, dst, amount, possible, story), run in zip(cases, crowd.runs, strict=True):
            after = (_balance(ctx, "bank_a", src), _balance(ctx, "bank_b", dst))
            seen.append(
                {
                    "tid": f"{token}-{name}",
                    "call": f"transfer_across('{token}-{name}', {src}, {dst}, {amount})",
                    "story": story,
                    "run": run,
                    "src": src,
                    "dst": dst,
                    "amount": amount,
                    "possible": possible,
                    "left": before[name][0] - after[0],
                    "arrived": after[1] - before[name][1],
                }
            )
        left_over = {b: _prepared(ctx, b) for b in BANKS}
    finally:
        _release(ctx)
    evidence = _statements_evidence(crowd, "what the three transfers sent")
    for s in seen:
        if s["run"].timed_out:
            _require_ran(s["run"], s["call"])
    for s in seen:
        if (s["left"], s["arrived"]) not in ((0, 0), (s["amount"], s["amount"])):
            run = s["run"]
            raise Fail(
                f"{s['call']} ({s['story']}): {s['left']} left account {s['src']} at bank A "
                f"and {s['arrived']} arrived in account {s['dst']} at bank B. Money "
                f"{'vanished' if s['left'] > s['arrived'] else 'appeared'}: one bank "
                f"committed its part and the other did not. With two separate commits, "
                f"whichever comes second can still fail; each bank must first promise that "
                f"it can commit (PREPARE TRANSACTION), and commit only once both have.",
                evidence,
                Evidence("returned", "text", repr(run.value) if run.ok else _first_line(run.error)),
            )
    for s in seen:
        s["moved"] = s["left"] == s["amount"]
        if s["moved"] != s["possible"]:
            raise Fail(
                f"{s['call']} ({s['story']}) "
                + (
                    f"moved nothing, on either bank. It should have moved {s['amount']}."
                    if s["possible"]
                    else f"moved {s['amount']}, which the lab's banks never allow."
                ),
                evidence,
                Evidence(
                    "returned",
                    "text",
                    repr(s["run"].value) if s["run"].ok else _first_line(s["run"].error),
                ),
            )
    for s in seen:
        if s["run"].ok and s["run"].value is not s["moved"]:
            raise Fail(
                f"{s['call']} ({s['story']}) returned {s['run'].value!r}, but the money "
                f"{'moved' if s['moved'] else 'did not move'}: it returns True only when "
                f"both banks changed, False when either refused.",
                evidence,
            )
    for s in seen:
        if not s["possible"] and _decided(ctx, s["tid"]):
            raise Fail(
                f"{s['call']} ({s['story']}) changed nothing, but bank A's decisions table "
                f"says transfer '{s['tid']}' committed. Had the coordinator crashed just "
                f"then, a recovery that trusts the log would have committed whatever was "
                f"prepared of it. Write the decision only after both banks have prepared.",
                evidence,
            )
        if s["possible"] and not _decided(ctx, s["tid"]):
            raise Fail(
                f"{s['call']} moved the money, but bank A's decisions table has no row for "
                f"transfer '{s['tid']}'. The row is the decision to commit: without it, a "
                f"coordinator that crashed between its two COMMIT PREPAREDs would leave a "
                f"transfer that recovery must roll back on one bank after the other had "
                f"committed it.",
                evidence,
            )
    if any(left_over.values()):
        where = "; ".join(f"{b}: {', '.join(g)}" for b, g in left_over.items() if g)
        raise Fail(
            f"After the transfers returned, transactions were still prepared ({where}). A "
            f"prepared transaction keeps its row locks and holds back VACUUM until someone "
            f"runs COMMIT PREPARED or ROLLBACK PREPARED; the coordinator must finish every "
            f"one it prepared, whichever way the transfer went. (The checker rolled them "
            f"back.)",
            evidence,
        )
    lines = [
        (
            s["tid"],
            f"{s['src']} -> {s['dst']}",
            s["amount"],
            ("moved" if s["moved"] else "refused")
            + ("" if s["run"].ok else f" (raised {_first_line(s['run'].error)[:60]})"),
        )
        for s in seen
    ]
    missing = [
        (bank, what)
        for bank in BANKS
        for what, pattern in (
            ("PREPARE TRANSACTION", r"\bPREPARE\s+TRANSACTION\b"),
            ("COMMIT PREPARED", r"\bCOMMIT\s+PREPARED\b"),
        )
        if not _has(_statements(crowd, bank), pattern)
    ]
    if missing:
        bank, what = missing[0]
        raise Fail(
            f"The transfers came out right, but {bank} never received {what}: the money "
            f"moved with ordinary commits, one bank after the other. That ordering works "
            f"until the second commit fails or the coordinator dies between the two; then "
            f"one bank has committed alone. Prepare on both banks, record the decision, "
            f"then COMMIT PREPARED on both.",
            _statements_evidence(crowd, "what the three transfers sent"),
        )
    gids = {bank: gid(f"{token}-ok", bank) for bank in BANKS}
    unnamed = [b for b in BANKS if not any(gids[b] in s for s in _statements(crowd, b))]
    if unnamed:
        raise Fail(
            f"{unnamed[0]} prepared its part of transfer '{token}-ok' under another name "
            f"than gid('{token}-ok', '{unnamed[0]}') = '{gids[unnamed[0]]}'. recover.py "
            f"finds a stranded transfer's decision by the transfer id in its gid: keep to "
            f"the lab's gid().",
            _statements_evidence(crowd, "what the three transfers sent"),
        )
    return Pass(
        "A possible transfer moved on both banks through PREPARE TRANSACTION and COMMIT "
        "PREPARED, with its decision logged; the two refused ones changed neither bank and "
        "logged nothing; nothing was left prepared.",
        Evidence(
            "transfers",
            "table",
            (("transfer", "accounts", "amount", "outcome"), lines),
        ),
    )


@check("crash-while-deciding")
def crash_while_deciding(ctx: CheckContext) -> Pass:
    """Kill the coordinator while it writes its decision; the log must still be the truth."""
    from psycopg import sql

    _release(ctx)
    tid = f"{_token()}-crash"
    call = f"transfer_across('{tid}', {CRASH_FROM}, {CRASH_TO}, {AMOUNT})"
    before = (_balance(ctx, "bank_a", CRASH_FROM), _balance(ctx, "bank_b", CRASH_TO))
    seen: dict[str, Any] = {}
    links = {bank: ctx.proxy(bank) for bank in BANKS}
    try:
        with ctx.scratch("bank_a") as conn:
            # EXCLUSIVE: reading the log still works; writing to it waits.
            conn.execute("LOCK TABLE decisions IN EXCLUSIVE MODE")
            job = _in_background(
                lambda: ctx.run(
                    "transfer.py",
                    "transfer_across",
                    tid,
                    CRASH_FROM,
                    CRASH_TO,
                    AMOUNT,
                    clients=BANKS,
                    proxies=dict(links),
                )
            )
            waiting: list[int] = []
            while not job.done() and not waiting:
                waiting = _waiting_on_me(conn)
                if not waiting:
                    time.sleep(POLL)
            if waiting:
                # The moment of the crash: what each bank holds while the decision waits.
                seen = {
                    "a": _balance(ctx, "bank_a", CRASH_FROM),
                    "b": _balance(ctx, "bank_b", CRASH_TO),
                    "prepared": {b: _prepared(ctx, b) for b in BANKS},
                }
                # The crash: from now on nothing the coordinator sends reaches a bank, on
                # any connection, old or new; and its waiting session ends before the
                # decision could land.
                for link in links.values():
                    link.refuse = True
                    link.drop_connections()
                for pid in waiting:
                    conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
                gone_by = time.monotonic() + 5
                while _still_there(conn, waiting) and time.monotonic() < gone_by:
                    time.sleep(POLL)
            run = job.result()
        if not seen:
            if run.timed_out or not run.ok:
                _require_ran(run, call)
            moved = _balance(ctx, "bank_a", CRASH_FROM) != before[0]
            if moved and not _decided(ctx, tid):
                raise Fail(
                    f"{call} moved the money without ever writing to bank A's decisions "
                    f"table. The checker meant to crash your coordinator while it logged "
                    f"its decision; there was none to log. Without the row, a crash "
                    f"between the two commits leaves a transfer no recovery can finish "
                    f"correctly.",
                    _statements_evidence(run, f"what {call} sent"),
                )
            raise Fail(
                f"{call} never wrote to bank A's decisions table "
                f"({'it moved the money anyway' if moved else 'and moved nothing'}): the "
                f"checker holds a lock on that table and waits for your coordinator to "
                f"write its decision there, to crash it at that moment.",
                _statements_evidence(run, f"what {call} sent"),
            )
        # What a recovery that trusts the log does: commit what it says, roll back the rest.
        decided = _decided(ctx, tid)
        for bank in BANKS:
            for g in _prepared(ctx, bank):
                verb = "COMMIT" if g.rpartition("@")[0] == tid and decided else "ROLLBACK"
                ctx.pg(bank).execute(sql.SQL(verb + " PREPARED {}").format(sql.Literal(g)))
        after = (_balance(ctx, "bank_a", CRASH_FROM), _balance(ctx, "bank_b", CRASH_TO))
    finally:
        _release(ctx)
    left, arrived = before[0] - after[0], after[1] - before[1]
    committed = [
        name
        for name, now, was in (("A", seen["a"], before[0]), ("B", seen["b"], before[1]))
        if now != was
    ]
    moment = Evidence(
        "while the decision was being written",
        "table",
        (
            ("", "bank A", "bank B"),
            [
                (
                    "balance",
                    f"{seen['a']} (was {before[0]})",
                    f"{seen['b']} (was {before[1]})",
                ),
                (
                    "prepared",
                    ", ".join(seen["prepared"]["bank_a"]) or "(none)",
                    ", ".join(seen["prepared"]["bank_b"]) or "(none)",
                ),
            ],
        ),
    )
    if committed or (left, arrived) not in ((0, 0), (AMOUNT, AMOUNT)):
        early = (
            f"bank {' and bank '.join(committed)} had already committed its part"
            if committed
            else "the banks did not hold their parts as prepared transactions"
        )
        raise Fail(
            f"The checker crashed {call} while it was writing its decision (cut it off "
            f"from both banks and ended its waiting session), and then did "
            f"what a recovery that trusts the log must do: no decision row, so roll back "
            f"everything still prepared. Result: {left} left bank A and {arrived} reached "
            f"bank B, and the log says the transfer never happened. While the decision "
            f"was still being written, {early}: nothing may commit before the decision is "
            f"in the log.",
            moment,
        )
    return Pass(
        f"Crashed while writing its decision, the coordinator left "
        f"{'both banks prepared' if all(seen['prepared'].values()) else 'nothing committed'}"
        f"; rolling back what the log never decided left both banks as they were.",
        moment,
    )


def _still_there(conn: Any, pids: list[int]) -> bool:
    """Whether any of these backends still holds or waits for a lock (pg_locks is live;
    pg_stat_activity would be a snapshot taken once per transaction)."""
    row = conn.execute("SELECT count(*) FROM pg_locks WHERE pid = ANY(%s)", (pids,)).fetchone()
    return bool(row[0])


# ------------------------------------------------------------------ task 3


def _strand(ctx: CheckContext, token: str) -> list[tuple[str, int, str, str, bool]]:
    """Leave transfers behind as a coordinator that crashed at different points would."""
    from psycopg import sql

    made = []
    for n, (name, part_a, part_b, decided) in enumerate(STRANDED):
        tid, account = f"{token}-{name}", STRANDED_FIRST + n
        for bank, part, sign in (("bank_a", part_a, -1), ("bank_b", part_b, 1)):
            if part == "none":
                continue
            conn = ctx.pg(bank)
            conn.execute("BEGIN")
            conn.execute(
                "UPDATE accounts SET balance = balance + %s WHERE id = %s",
                (sign * AMOUNT, account),
            )
            verb = "COMMIT" if part == "committed" else "PREPARE TRANSACTION"
            if part == "committed":
                conn.execute("COMMIT")
            else:
                conn.execute(sql.SQL(verb + " {}").format(sql.Literal(gid(tid, bank))))
        if decided:
            ctx.pg("bank_a").execute("INSERT INTO decisions (transfer_id) VALUES (%s)", (tid,))
        made.append((name, account, part_a, part_b, decided))
    return made


@check("recovery")
def recovery(ctx: CheckContext) -> Pass:
    """recover() after a crash: decided transfers land on both banks, the rest on neither."""
    _release(ctx)
    token = _token()
    accounts = [STRANDED_FIRST + n for n in range(len(STRANDED))]
    before = {(bank, a): _balance(ctx, bank, a) for bank in BANKS for a in accounts}
    try:
        made = _strand(ctx, token)
        left = {b: _prepared(ctx, b) for b in BANKS}
        run = ctx.run("recover.py", "recover", clients=BANKS)
        _require_ran(run, "recover()")
        rows, wrong = [], []
        for name, account, part_a, part_b, decided in made:
            change_a = _balance(ctx, "bank_a", account) - before[("bank_a", account)]
            change_b = _balance(ctx, "bank_b", account) - before[("bank_b", account)]
            want = (-AMOUNT, AMOUNT) if decided else (0, 0)
            shown = {"none": "never prepared"}
            state = f"A {shown.get(part_a, part_a)}, B {shown.get(part_b, part_b)}, " + (
                "decided" if decided else "no decision"
            )
            got = f"A {change_a:+d}, B {change_b:+d}"
            rows.append((f"{token}-{name}", state, f"A {want[0]:+d}, B {want[1]:+d}", got))
            if (change_a, change_b) != want:
                wrong.append((f"{token}-{name}", state, want, (change_a, change_b)))
        table = Evidence(
            "stranded transfers, and what recover() made of them",
            "table",
            (("transfer", "left by the crash", "must end as", "ended as"), rows),
        )
        still = {b: _prepared(ctx, b) for b in BANKS}
        if any(still.values()):
            where = "; ".join(f"{b}: {', '.join(g)}" for b, g in still.items() if g)
            raise Fail(
                f"After recover(), transactions are still prepared ({where}). Each keeps "
                f"its row locks until someone finishes it, so those accounts cannot "
                f"change; recover() must finish every prepared transaction of this "
                f"database, on both banks.",
                table,
            )
        if wrong:
            # The worst first: a transfer applied on one bank only.
            wrong.sort(key=lambda w: w[3][0] == -w[3][1])
            tid, state, want, got = wrong[0]
            if got[0] != got[1] * -1:
                what = "one bank has the transfer and the other does not: money " + (
                    "vanished" if -got[0] > got[1] else "appeared"
                )
            else:
                what = "both banks agree, but not with the decision log"
            rule = (
                "The log has a decision row for it: it committed, so every part still "
                "prepared must be committed."
                if want != (0, 0)
                else "The log has no decision for it: the coordinator never decided, so "
                "nothing of it may commit (presumed abort)."
            )
            raise Fail(
                f"{len(wrong)} of {len(made)} stranded transfers came out wrong. "
                f"Transfer '{tid}' ({state}): {what}. {rule}",
                table,
            )
        again = ctx.run("recover.py", "recover", clients=BANKS)
        _require_ran(again, "recover() run a second time, with nothing left to do")
    finally:
        _release(ctx)
    counts = {b: len(g) for b, g in left.items()}
    return Pass(
        f"recover() finished {counts['bank_a']} prepared transaction(s) on bank A and "
        f"{counts['bank_b']} on bank B: the {sum(d for *_, d in made)} decided transfers "
        f"landed on both banks, the others on neither; a second run had nothing to do.",
        table,
    )
