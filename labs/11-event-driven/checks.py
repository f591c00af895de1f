"""Checks for the event-driven lab: what reached the database, never the clock.

The event store is judged by its catalog (a unique index on the stream and version) and
by what the learner's append() does when the stream has moved on, alone and with four
writers released at once. History is judged by trying to change it, as the lab's login
(the one the learner's code uses). The projection is judged by comparing the read model
with the fold of the log, computed here in SQL, after every catch-up and rebuild. The
saga is judged by saga_log, which the checker's own copy of travel.py writes on every
service call, and by the seats, rooms and money left afterwards.

Every check works on fresh accounts and trips (ids past the ones already there), so a
second `lab check` without re-applying events.sql judges the same way: the solution
makes events impossible to delete, so nothing the checks append is ever cleaned up.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sdtutor.lab.checks import CheckContext, Evidence, Fail, Pass, check

EVENTS, SAGA = "events.py", "saga.py"
TRAVEL = Path(__file__).parent / "starter" / "travel.py"
"""The lab's own copy of the travel services: the saga runs with it, whatever the
workspace's travel.py says, so saga_log records what really happened."""

WRITERS = 4
LATENCY = 0.1
"""Seconds the proxy adds to each trip to PostgreSQL while the writers race: it widens
the gap between a read and a write, so a check-then-insert without a constraint lets
several writers through on any machine. Imposed, never measured."""

FOLD = """
SELECT account_id,
       sum(CASE kind WHEN 'deposited' THEN amount WHEN 'withdrawn' THEN -amount ELSE 0 END),
       max(version)
FROM account_events GROUP BY account_id
"""
READ_MODEL = "SELECT account_id, balance, version FROM account_balances"


# ------------------------------------------------------------------ helpers


def _fresh_account(ctx: CheckContext) -> int:
    """An account id no event uses yet (past every one the checks made before)."""
    top = int(ctx.value("SELECT coalesce(max(account_id), 0) FROM account_events"))
    return max(top, 100_000) + 1 + secrets.randbelow(1000)


def _record(ctx: CheckContext, account_id: int, events: Iterable[tuple[str, int]]) -> None:
    """Append events to a fresh stream as the checker (versions 1, 2, ...)."""
    for version, (kind, amount) in enumerate(events, start=1):
        ctx.query(
            "INSERT INTO account_events (account_id, version, kind, amount) "
            "VALUES (%s, %s, %s, %s)",
            (account_id, version, kind, amount),
        )


def _stream(ctx: CheckContext, account_id: int) -> list[tuple[int, str, int]]:
    return [
        (int(v), str(k), int(a))
        for v, k, a in ctx.query(
            "SELECT version, kind, amount FROM account_events WHERE account_id = %s "
            "ORDER BY version, position",
            (account_id,),
        )
    ]


def _stream_evidence(stream: list[tuple[int, str, int]], account_id: int) -> Evidence:
    return Evidence(
        f"account {account_id}'s events",
        "table",
        (("version", "kind", "amount"), [(v, k, f"{a:,}") for v, k, a in stream]),
    )


def _call(function: str, *args: Any) -> str:
    return f"{function}({', '.join(repr(a) for a in args)})"


def _require_ran(run: Any, call: str) -> None:
    """Fail when the learner's code never returned or raised (an error is judged later)."""
    if run.timed_out or run.limit:
        what = "did not return in time" if run.timed_out else f"hit its {run.limit} limit"
        raise Fail(
            f"{call} {what}. Look for a loop that never ends or a lock that is never "
            f"released (a transaction left open).",
            Evidence("its output", "text", run.output or "(none)"),
        )


def _require_ok(run: Any, call: str) -> Any:
    _require_ran(run, call)
    if not run.ok:
        raise Fail(
            f"{call} raised {run.error}",
            Evidence("traceback", "text", run.traceback or run.output or run.error),
        )
    return run.value


def _error_type(run: Any) -> str:
    return str(run.error or "").split(":", 1)[0].strip()


def _truth(ctx: CheckContext) -> dict[int, tuple[int, int]]:
    return {int(a): (int(b), int(v)) for a, b, v in ctx.query(FOLD)}


def _read_model(ctx: CheckContext) -> dict[int, tuple[int, int]]:
    return {int(a): (int(b), int(v)) for a, b, v in ctx.query(READ_MODEL)}


def _differences(
    got: dict[int, tuple[int, int]], want: dict[int, tuple[int, int]]
) -> list[tuple[Any, ...]]:
    """Rows where the read model and the fold disagree: (account, read model, the fold)."""
    rows = []
    for account in sorted(set(got) | set(want)):
        mine, truth = got.get(account), want.get(account)
        if mine != truth:
            rows.append(
                (
                    account,
                    "(missing)" if mine is None else f"{mine[0]:,} at v{mine[1]}",
                    "(no events)" if truth is None else f"{truth[0]:,} at v{truth[1]}",
                )
            )
    return rows


def _diff_evidence(rows: list[tuple[Any, ...]], title: str) -> Evidence:
    shown = rows[:8] + ([("...", f"{len(rows) - 8} more", "")] if len(rows) > 8 else [])
    return Evidence(title, "table", (("account", "account_balances", "fold of the events"), shown))


def _describe(rows: list[tuple[Any, ...]], got: dict[int, Any], want: dict[int, Any]) -> str:
    """A few words on how the read model is off: doubled, missing rows, or just wrong."""
    missing = sum(1 for a in want if a not in got)
    extra = sum(1 for a in got if a not in want)
    multiples = [
        b // want[a][0]
        for a, (b, _) in got.items()
        if a in want
        and want[a][0] != 0
        and b != want[a][0]
        and b % want[a][0] == 0
        and b // want[a][0] > 1
    ]
    if missing == len(want) and want:
        return "the read model is empty"
    if multiples and len(multiples) >= len(rows) // 2:
        times = max(set(multiples), key=multiples.count)
        return (
            f"{len(multiples)} accounts show {'twice' if times == 2 else f'{times} times'} "
            f"their balance: events were applied again"
        )
    parts = []
    if missing:
        parts.append(f"{missing} accounts are missing")
    if extra:
        parts.append(f"{extra} accounts have rows but no events")
    wrong = len(rows) - missing - extra
    if wrong:
        parts.append(f"{wrong} accounts have the wrong balance or version")
    return ", ".join(parts)


def _run_projection(ctx: CheckContext, function: str) -> Any:
    run = ctx.run(EVENTS, function, clients=("postgres",))
    return _require_ok(run, f"{function}()")


def _must_match_fold(ctx: CheckContext, after: str, advice: str) -> dict[int, tuple[int, int]]:
    got, want = _read_model(ctx), _truth(ctx)
    rows = _differences(got, want)
    if rows:
        raise Fail(
            f"After {after}, account_balances disagrees with the events for {len(rows)} of "
            f"{len(want)} accounts: {_describe(rows, got, want)}. {advice}",
            _diff_evidence(rows, "where they disagree"),
        )
    return got


# ------------------------------------------------------------------ the event store


@check("versions-unique")
def versions_unique(ctx: CheckContext) -> Pass:
    """A unique index on (account_id, version): the database refuses the second writer."""
    indexes = ctx.indexes("account_events").valid()
    exact = [
        i
        for i in indexes
        if i.unique and not i.partial and set(i.columns) == {"account_id", "version"}
    ]
    if exact:
        return Pass(
            f"{exact[0].describe()} is unique: two events can never share a version of one "
            f"stream, whatever the application checked first.",
            indexes.evidence("indexes on account_events"),
        )
    wider = [i for i in indexes if i.unique and {"account_id", "version"} <= set(i.columns)]
    if any(not i.partial and len(i.columns) > 2 for i in wider):
        near = next(i for i in wider if len(i.columns) > 2)
        others = ", ".join(c for c in near.columns if c not in ("account_id", "version"))
        why = (
            f"{near.describe()} is unique over more than the stream and its version, so two "
            f"events that differ in {others} "
            f"may both be version 5 of one account. Make the key exactly (account_id, version)."
        )
    elif wider:
        why = (
            f"{wider[0].describe()} is partial: only the rows of its WHERE are kept unique, and "
            f"a stream's events are all equal here. Drop the WHERE."
        )
    elif any(set(i.columns[:2]) == {"account_id", "version"} for i in indexes):
        why = (
            "There is an index on (account_id, version), but it is not UNIQUE: it finds a "
            "version fast and still lets two writers both store it."
        )
    else:
        why = (
            "Nothing in the catalog stops two events from sharing a version of one stream. "
            "Two writers that both loaded version 4 can each append a version 5, and the "
            "account's history forks: a check in Python cannot close that gap, because "
            "both checks run before either insert. Let the database refuse the second one "
            "in events.sql, then apply it: sdtutor lab shell event-driven -f events.sql"
        )
    raise Fail(why, indexes.evidence("indexes on account_events"))


@check("stale-append-refused")
def stale_append_refused(ctx: CheckContext) -> Pass:
    """append() at a version the stream has moved past raises Conflict and stores nothing."""
    account = _fresh_account(ctx)
    new = _call("append", account, 0, "opened", 0)
    run = ctx.run(EVENTS, "append", account, 0, "opened", 0, clients=("postgres",))
    version = _require_ok(run, new)
    stream = _stream(ctx, account)
    if version != 1 or stream != [(1, "opened", 0)]:
        raise Fail(
            f"{new} opened a new stream but returned {version!r}; the stream holds "
            f"{len(stream)} events. The first event of an account is version 1.",
            _stream_evidence(stream, account),
        )
    # Someone deposits 5,000; the caller loads the stream at version 2 and decides to
    # withdraw 3,000. Before it appends, another writer withdraws 4,000 as version 3.
    ctx.query(
        "INSERT INTO account_events (account_id, version, kind, amount) "
        "VALUES (%s, 2, 'deposited', 5000), (%s, 3, 'withdrawn', 4000)",
        (account, account),
    )
    stale = _call("append", account, 2, "withdrawn", 3000)
    run = ctx.run(EVENTS, "append", account, 2, "withdrawn", 3000, clients=("postgres",))
    _require_ran(run, stale)
    stream = _stream(ctx, account)
    evidence = _stream_evidence(stream, account)
    if run.ok:
        raise Fail(
            f"Account {account} was loaded at version 2 (balance 5,000), another "
            f"writer then withdrew 4,000 as version 3, and {stale} was accepted (it "
            f"returned {run.value!r}). The withdrawal was decided on a balance of 5,000 "
            f"that no longer exists: the account now folds to "
            f"{sum({'deposited': 1, 'withdrawn': -1}.get(k, 0) * a for _, k, a in stream):,}. "
            f"An append must land exactly after the version the caller saw, and fail if "
            f"that version is taken.",
            evidence,
        )
    kind = _error_type(run)
    if len(stream) != 3:
        raise Fail(
            f"{stale} raised {kind}, but the stream now holds {len(stream)} events: the "
            f"refused withdrawal was stored anyway. Nothing may be appended when the "
            f"version is taken.",
            evidence,
        )
    if kind != "Conflict":
        raise Fail(
            f"{stale} was refused, good, but with {run.error}. The caller cannot tell that "
            f"from any other failure; append() promises Conflict, which means 'reload the "
            f"stream, decide again, retry'. Catch the database's refusal and raise Conflict.",
            Evidence("traceback", "text", run.traceback or run.error),
            evidence,
        )
    return Pass(
        "A withdrawal decided at version 2 was refused with Conflict once version 3 "
        "existed, and nothing was stored; a new stream's first append returned version 1.",
        evidence,
    )


@check("one-append-wins")
def one_append_wins(ctx: CheckContext) -> Pass:
    """Of WRITERS appends at one version, released together, exactly one is stored."""
    account = _fresh_account(ctx)
    _record(ctx, account, [("opened", 0), ("deposited", 1000)])
    amounts = [600 + 100 * i for i in range(WRITERS)]
    proxy = ctx.proxy("postgres")
    proxy.latency = LATENCY
    try:
        crowd = ctx.workers(
            EVENTS,
            "append",
            WRITERS,
            clients=("postgres",),
            args_for=lambda i: [account, 2, "withdrawn", amounts[i]],
            proxies={"postgres": proxy},
        )
    finally:
        proxy.latency = 0.0
    for run, amount in zip(crowd.runs, amounts, strict=True):
        _require_ran(run, _call("append", account, 2, "withdrawn", amount))
    stream = _stream(ctx, account)
    evidence = _stream_evidence(stream, account)
    outcomes = Evidence(
        "what each writer got",
        "table",
        (
            ("writer", "withdrawal", "result"),
            [
                (i + 1, f"{a:,}", f"returned {r.value!r}" if r.ok else str(r.error)[:90])
                for i, (r, a) in enumerate(zip(crowd.runs, amounts, strict=True))
            ],
        ),
    )
    winners = [r for r in crowd.runs if r.ok]
    after = stream[2:]
    if len(after) > 1:
        versions = sorted({v for v, _, _ in after})
        raise Fail(
            f"{WRITERS} writers loaded account {account} at version 2 and each appended a "
            f"withdrawal; {len(after)} of them were stored (as version"
            f"{'s' if len(versions) > 1 else ''} {', '.join(map(str, versions))}). Each was "
            f"decided on the same balance of 1,000, so {sum(a for _, _, a in after):,} left "
            f"an account that held 1,000. Exactly one may win; the others must get "
            f"Conflict. Checking the version in Python first does not close the race: all "
            f"of them check before any of them writes.",
            outcomes,
            evidence,
        )
    if not after:
        raise Fail(
            f"{WRITERS} writers appended at version 2 and none was stored: one of them "
            f"should have won.",
            outcomes,
            evidence,
        )
    if len(winners) != 1:
        raise Fail(
            f"One withdrawal was stored, but {len(winners)} of the {WRITERS} writers "
            f"returned normally: a caller told 'done' whose event is not in the stream "
            f"will think the money left the account. The losers must raise Conflict.",
            outcomes,
            evidence,
        )
    losers = [r for r in crowd.runs if not r.ok]
    wrong = [r for r in losers if _error_type(r) != "Conflict"]
    if wrong:
        raise Fail(
            f"Exactly one writer won, good, but {len(wrong)} of the losers raised "
            f"{_error_type(wrong[0])} instead of Conflict: a caller cannot tell 'someone "
            f"else wrote first, retry' from a real failure.",
            outcomes,
            evidence,
        )
    return Pass(
        f"Of {WRITERS} writers released together at version 2, one stored version 3 and "
        f"{WRITERS - 1} got Conflict.",
        outcomes,
        evidence,
    )


@check("events-immutable")
def events_immutable(ctx: CheckContext) -> Pass:
    """UPDATE, DELETE and TRUNCATE of account_events fail for the application's login."""
    import psycopg

    account = _fresh_account(ctx)
    facts = Evidence(
        "what the catalog says",
        "table",
        (
            ("privilege or trigger", "value"),
            [
                (f"{p} on account_events", "yes" if ok else "no")
                for p, ok in ctx.query(
                    "SELECT p, has_table_privilege('account_events', p) FROM "
                    "unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) AS p"
                )
            ]
            + [
                (f"trigger {name}", definition)
                for name, definition in ctx.query(
                    "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger "
                    "WHERE tgrelid = 'account_events'::regclass AND NOT tgisinternal "
                    "AND tgenabled <> 'D' ORDER BY tgname"
                )
            ]
            + [
                (f"rule {name}", definition)
                for name, definition in ctx.query(
                    "SELECT rulename, definition FROM pg_rules WHERE tablename = "
                    "'account_events' AND schemaname = current_schema()"
                )
            ],
        ),
    )
    position = ctx.value(
        "SELECT position FROM account_events WHERE account_id = 42 AND version = 2"
    )
    if position is None:
        raise Fail(
            "Account 42's deposit of 10,000 (its version 2), on which this check tries to "
            "change history, is no longer there: the seeded events were edited or removed. "
            "Apply events.sql again (sdtutor lab shell event-driven -f events.sql), which "
            "starts from a fresh copy of the seeded data.",
            facts,
        )
    attempts = [
        ("UPDATE", "UPDATE account_events SET amount = amount + 1 WHERE position = %s"),
        ("DELETE", "DELETE FROM account_events WHERE position = %s"),
        ("TRUNCATE", "TRUNCATE account_events"),
    ]
    results: list[tuple[str, str]] = []
    allowed: list[str] = []
    with ctx.scratch() as conn:
        try:
            with conn.transaction():
                conn.execute(
                    "INSERT INTO account_events (account_id, version, kind) "
                    "VALUES (%s, 1, 'opened')",
                    (account,),
                )
        except psycopg.Error as exc:
            raise Fail(
                f"The application can no longer append: an INSERT into account_events "
                f"failed with {type(exc).__name__}: {str(exc).splitlines()[0]}. Append-only "
                f"means no UPDATE, DELETE or TRUNCATE; INSERT must stay.",
                facts,
            ) from None
        for verb, sql in attempts:
            try:
                with conn.transaction():
                    conn.execute(sql, (position,) if "%s" in sql else None)
                    left = conn.execute(
                        "SELECT amount FROM account_events WHERE position = %s", (position,)
                    ).fetchone()
                    if left == (10000,):
                        results.append((verb, "ignored: the event is unchanged"))
                    else:
                        results.append((verb, "ALLOWED: the event was changed or removed"))
                        allowed.append(verb)
                    raise _Undo
            except _Undo:
                pass
            except psycopg.Error as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                results.append((verb, f"refused: {first}"))
    tried = Evidence(
        "as the lab's login, inside a transaction rolled back afterwards",
        "table",
        (("statement", "result"), results),
    )
    if allowed:
        missing = " and ".join(allowed)
        raise Fail(
            f"The application's login could {missing} the account's history (tried on "
            f"account 42's deposit of 10,000, then rolled back). Replaying a stream that "
            f"was edited gives a different balance than the one customers saw, and the "
            f"audit trail is gone. In events.sql, make PostgreSQL refuse "
            f"{missing} on account_events, for the login your code uses"
            + (
                " (TRUNCATE is a separate privilege, and a row trigger never sees it)"
                if "TRUNCATE" in allowed and len(allowed) == 1
                else ""
            )
            + ", and apply it again.",
            tried,
            facts,
        )
    return Pass(
        "UPDATE, DELETE and TRUNCATE of account_events were refused for the lab's login, "
        "which your code uses; INSERT still works.",
        tried,
        facts,
    )


class _Undo(Exception):
    """Roll back a savepoint after looking at what a statement did."""


# ------------------------------------------------------------------ the projection


@check("projection-catch-up")
def projection_catch_up(ctx: CheckContext) -> Pass:
    """catch_up() keeps account_balances equal to the fold; running it again changes nothing."""
    _run_projection(ctx, "catch_up")
    _must_match_fold(
        ctx,
        "catch_up()",
        "The read model must end equal to the fold of every account's events.",
    )
    account = _fresh_account(ctx)
    _record(ctx, account, [("opened", 0), ("deposited", 900)])
    top = int(ctx.value("SELECT max(version) FROM account_events WHERE account_id = 17"))
    for version, (kind, amount) in enumerate(
        [("deposited", 250), ("withdrawn", 100)], start=top + 1
    ):
        ctx.query(
            "INSERT INTO account_events (account_id, version, kind, amount) "
            "VALUES (17, %s, %s, %s)",
            (version, kind, amount),
        )
    _run_projection(ctx, "catch_up")
    _must_match_fold(
        ctx,
        f"4 new events (2 for account 17, 2 for a new account {account}) and a second catch_up()",
        "catch_up must apply each event once: the ones it has not seen yet, and only "
        "those. Keep how far it has read in the database, updated in the same "
        "transaction as the read model.",
    )
    before = _read_model(ctx)
    _run_projection(ctx, "catch_up")
    _must_match_fold(
        ctx,
        "a third catch_up() with no new events",
        "With nothing new in the log, catch_up must change nothing: a projector is "
        "restarted, redeployed and run twice by accident all the time.",
    )
    return Pass(
        f"account_balances matched the fold of all {len(before)} accounts after the first "
        f"catch_up, after 4 new events, and after a catch_up with nothing new."
    )


@check("projection-rebuild")
def projection_rebuild(ctx: CheckContext) -> Pass:
    """rebuild() from scratch equals the fold; twice changes nothing; catch_up goes on from it."""
    _run_projection(ctx, "rebuild")
    _must_match_fold(
        ctx,
        "rebuild()",
        "A rebuild empties the read model and replays the whole log from the first event: "
        "whatever state the projection was in before must not matter.",
    )
    _run_projection(ctx, "rebuild")
    _must_match_fold(
        ctx,
        "a second rebuild()",
        "Rebuilding twice must give the same read model as rebuilding once.",
    )
    _run_projection(ctx, "catch_up")
    rows = _must_match_fold(
        ctx,
        "rebuild() and then catch_up() with no new events",
        "A rebuilt read model must know how far it has read, so the next catch_up goes on "
        "from the end of the log instead of applying it again.",
    )
    return Pass(
        f"rebuild() gave the fold of all {len(rows)} accounts, twice in a row, and the "
        f"catch_up() after it applied nothing again."
    )


# ------------------------------------------------------------------ the saga

PRICE = 50_000
EXPECTED_DONE = ("reserve_flight", "reserve_hotel", "charge_card")
UNDO = {
    "reserve_flight": "cancel_flight",
    "reserve_hotel": "cancel_hotel",
    "charge_card": "refund_card",
}


def _trip(ctx: CheckContext, *, seats: int = 5, rooms: int = 5, money: int = 100_000) -> int:
    """A trip on a flight, a hotel and a card of its own, priced 50,000."""
    tag = secrets.token_hex(4)
    ctx.query("INSERT INTO flights VALUES (%s, %s)", (f"CHK-{tag}", seats))
    ctx.query("INSERT INTO hotels VALUES (%s, %s)", (f"Check Inn {tag}", rooms))
    ctx.query("INSERT INTO cards VALUES (%s, %s)", (f"9999-{tag}", money))
    return int(
        ctx.value(
            "INSERT INTO trips (flight, hotel, card, price) VALUES (%s, %s, %s, %s) RETURNING id",
            (f"CHK-{tag}", f"Check Inn {tag}", f"9999-{tag}", PRICE),
        )
    )


def _left(ctx: CheckContext, trip: int) -> tuple[int, int, int]:
    row = ctx.query(
        "SELECT f.seats_left, h.rooms_left, c.balance FROM trips t "
        "JOIN flights f ON f.code = t.flight JOIN hotels h ON h.name = t.hotel "
        "JOIN cards c ON c.number = t.card WHERE t.id = %s",
        (trip,),
    )[0]
    return int(row[0]), int(row[1]), int(row[2])


def _log(ctx: CheckContext, trip: int) -> list[tuple[str, str]]:
    return [
        (str(a), str(o))
        for a, o in ctx.query(
            "SELECT action, outcome FROM saga_log WHERE trip_id = %s ORDER BY position", (trip,)
        )
    ]


def _log_evidence(log: list[tuple[str, str]], trip: int) -> Evidence:
    return Evidence(
        f"saga_log for trip {trip}, in order",
        "table",
        (
            ("#", "call", "outcome"),
            [(i + 1, a, o) for i, (a, o) in enumerate(log)] or [("", "(none)", "")],
        ),
    )


def _book(ctx: CheckContext, trip: int) -> tuple[Any, list[tuple[str, str]], Evidence]:
    run = ctx.run(SAGA, "book_trip", trip, clients=("postgres",), files={"travel.py": TRAVEL})
    call = _call("book_trip", trip)
    _require_ran(run, call)
    log = _log(ctx, trip)
    if not run.ok:
        where = (
            " The StepFailed was not caught: the saga must catch it, compensate, and "
            'return "cancelled".'
            if _error_type(run) == "StepFailed"
            else ""
        )
        raise Fail(
            f"{call} raised {run.error}.{where}",
            Evidence("traceback", "text", run.traceback or run.output or run.error),
            _log_evidence(log, trip),
        )
    return run.value, log, _log_evidence(log, trip)


def _judge_compensations(log: list[tuple[str, str]], evidence: Evidence, story: str) -> None:
    """Fail when a compensation ran for a step that did not complete, or ran twice."""
    step_of = {undo: step for step, undo in UNDO.items()}
    completed = {a for a, o in log if a in UNDO and o == "done"}
    pointless = [a for a, o in log if o == "nothing to undo"]
    never = [a for a in dict.fromkeys(pointless) if step_of[a] not in completed]
    if never:
        calls = " and ".join(never)
        steps = " and ".join(step_of[a] for a in never)
        raise Fail(
            f"{story}, and the saga also called {calls}, undoing {steps}, which never "
            f"completed for this trip. Compensate only the steps that ran: with a real "
            f"service, refunding a charge that never happened pays out money, and "
            f"cancelling a booking you do not hold may cancel someone else's.",
            evidence,
        )
    if pointless:
        raise Fail(
            f"{story}, and the saga called {' and '.join(dict.fromkeys(pointless))} more "
            f"than once. Each completed step is undone once.",
            evidence,
        )


@check("saga-compensates-in-reverse")
def saga_compensates_in_reverse(ctx: CheckContext) -> Pass:
    """A declined card undoes the hotel, then the flight: the reverse of the steps."""
    trip = _trip(ctx, money=1_000)
    before = _left(ctx, trip)
    value, log, evidence = _book(ctx, trip)
    story = (
        f"For trip {trip} the flight and the hotel were reserved, then the card was "
        f"declined (it holds 1,000 of the 50,000 price)"
    )
    calls = [a for a, o in log]
    if calls[:3] != ["reserve_flight", "reserve_hotel", "charge_card"] or log[2][1] != "failed":
        raise Fail(
            f"book_trip({trip}) did not run the three steps in order (flight, hotel, "
            f"card): saga_log shows {', '.join(calls) or 'nothing'}. Keep the steps in "
            f"the order of STEPS.",
            evidence,
        )
    undone = [a for a, o in log[3:] if o == "done"]
    if undone != ["cancel_hotel", "cancel_flight"]:
        if sorted(undone) == ["cancel_flight", "cancel_hotel"]:
            why = (
                f"{story}; the saga cancelled the flight before the hotel. Compensations "
                f"run in reverse order, the most recent step first: a later step may "
                f"depend on an earlier one (the hotel booking names the flight's arrival), "
                f"so it is unwound before what it stands on."
            )
        elif not undone:
            why = (
                f"{story}, and nothing was undone: the trip still holds a seat and a room "
                f"that nobody will pay for."
            )
        else:
            held = [s for s in ("cancel_hotel", "cancel_flight") if s not in undone]
            why = (
                f"{story}; the saga ran {', '.join(undone)} but not {', '.join(held)}: "
                f"every step that completed needs its compensation."
            )
        raise Fail(why, evidence)
    _judge_compensations(log, evidence, story)
    after = _left(ctx, trip)
    if after != before:
        raise Fail(
            f"{story}. After the saga the flight has {after[0]} seats (was {before[0]}), "
            f"the hotel {after[1]} rooms (was {before[1]}), the card {after[2]:,} (was "
            f"{before[2]:,}): the compensations did not give everything back.",
            evidence,
        )
    if value != "cancelled":
        raise Fail(
            f"{story}; the compensations were right, but book_trip returned {value!r} where "
            f'it promises "cancelled": the caller would tell the customer the trip is booked.',
            evidence,
        )
    return Pass(
        f"{story}: the saga cancelled the hotel, then the flight, once each, and returned "
        f'"cancelled"; seats, rooms and money are as before.',
        evidence,
    )


@check("saga-only-what-ran")
def saga_only_what_ran(ctx: CheckContext) -> Pass:
    """A full hotel undoes only the flight; a full flight undoes nothing; success, nothing."""
    cases = [
        (
            "the hotel was full",
            {"rooms": 0},
            ["reserve_flight", "reserve_hotel"],
            ["cancel_flight"],
            "cancelled",
        ),
        ("the flight was full", {"seats": 0}, ["reserve_flight"], [], "cancelled"),
        ("every step succeeded", {}, list(EXPECTED_DONE), [], "booked"),
    ]
    shown = []
    for story, setup, steps, undo, want in cases:
        trip = _trip(ctx, **setup)
        before = _left(ctx, trip)
        value, log, evidence = _book(ctx, trip)
        tale = f"For trip {trip} {story}"
        calls = [a for a, _ in log]
        if calls[: len(steps)] != steps or any(a in UNDO for a in calls[len(steps) :]):
            raise Fail(
                f"{tale}; the saga should have called {', '.join(steps)} and stopped "
                f"there, but saga_log shows {', '.join(calls) or 'nothing'}. After a step "
                f"fails, no later step runs.",
                evidence,
            )
        _judge_compensations(log, evidence, tale)
        undone = [a for a, o in log[len(steps) :] if o == "done"]
        if undone != undo:
            raise Fail(
                f"{tale}; the saga should have undone "
                f"{', '.join(undo) or 'nothing'}, and it ran {', '.join(undone) or 'nothing'}.",
                evidence,
            )
        after = _left(ctx, trip)
        booked = (before[0] - 1, before[1] - 1, before[2] - PRICE)
        expected = before if want == "cancelled" else booked
        if after != expected:
            raise Fail(
                f"{tale}; afterwards the flight has {after[0]} seats, the hotel {after[1]} "
                f"rooms and the card {after[2]:,}, where {expected[0]}, {expected[1]} and "
                f"{expected[2]:,} were expected.",
                evidence,
            )
        if value != want:
            raise Fail(
                f'{tale}; book_trip returned {value!r} where it promises "{want}".', evidence
            )
        shown.append((story, ", ".join(calls)))
    return Pass(
        "Only the steps that ran were compensated: "
        + "; ".join(f"when {s}: {c}" for s, c in shown)
        + ".",
    )
