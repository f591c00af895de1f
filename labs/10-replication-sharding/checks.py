"""Checks for the replication-sharding lab: where statements ran, what the replica held.

Never timings. The router is driven through harness.py, one Router for several users
("sessions"), with every statement tagged `/* step N */` so that the statements counted
at each server (the runner's proxies) say which server ran which step. Whether a user saw
their own write is read from the rows the router handed back; whether the replica had
that write yet is read on the replica itself, by the checker.

Replication lag is measured on the replica (pg_last_wal_replay_lsn(), and whether a row
is there yet), never from pg_stat_replication on the primary: its replay_lag leaves out
recovery_min_apply_delay, which is what makes this replica a second late.

To hold replay back without superuser rights (pg_wal_replay_pause needs them), the
checker uses a lock conflict. It opens a transaction on the replica that reads
replay_gate, then takes ACCESS EXCLUSIVE on replay_gate on the primary. PostgreSQL logs
that lock in the WAL, and the replica may not replay it while a query there holds the
table: replay stops at that record, for up to max_standby_streaming_delay (30 s), until
the checker ends its replica transaction. Ending the checker's connections (even by a
crash) lets replay go on, so nothing stays paused. The hold is server-wide: the proof's
other cases, on other databases of the same pair, see the replica stop for those few
seconds, and every check here holds for a correct router while it does.

Sharding is judged from shard_for's placements of many keys, computed in one learner
call (harness.place), and in a second process to catch hashes salted per process.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sdtutor.lab.checks import CannotCheck, CheckContext, Evidence, Fail, Pass, check

ROUTER, SHARD = "router.py", "shard.py"
HARNESS = Path(__file__).with_name("harness.py")
HARNESS_FILE = "sdtutor_replication_harness.py"  # its name in the sandbox

APPLY_DELAY = 1.0
"""Seconds the replica holds back each commit (lab.yaml's recovery_min_apply_delay_ms)."""
HOLD = 5.0
"""Seconds a router call may take while the checker holds replay back: the hold lasts
until the call returns, and never longer than this."""
AGAIN_AFTER = 0.6
"""Seconds before ana reads again (a page reloaded): the replica is still behind then."""
SEEN_WITHIN = 3.0
"""Seconds the checker watches the replica for a write it missed, to say how late it was."""
POLL = 0.05

NEW_NOTE = "INSERT INTO notes (author, body) VALUES (%s, %s) RETURNING id"
EDIT_NOTE = "UPDATE notes SET body = %s WHERE author = %s AND body = %s"
MY_NOTES = "SELECT id, body FROM notes WHERE author = %s ORDER BY id DESC LIMIT 20"
COUNT_NOTES = "SELECT count(*) FROM notes"

# Sharding: 400 tenants of 10 records each, and one tenant with 1,000.
SHARDS = [f"shard{i}" for i in range(4)]
GROWN = [*SHARDS, "shard4"]
KEYS = [[f"tenant{t:03d}", f"doc-{k}"] for t in range(400) for k in range(10)]
HOT_TENANT = "megacorp"
HOT_KEYS = [[HOT_TENANT, f"doc-{k}"] for k in range(1000)]
EVEN = 0.30
"""How far from an equal share a shard may be (0.30: between 70% and 130% of it)."""
MOVED_AT_MOST = 0.30
"""Of the keys, the share a fifth shard may move (the least possible is 1/5)."""
HOT_AT_MOST = 1.5
"""A shard may hold at most this many times its equal share of the hot tenant's keys."""


# ------------------------------------------------------------------ the router


class Script:
    """Steps for the router, each statement tagged with its step number."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(3)
        self.steps: list[list[Any]] = []
        self.notes: dict[str, str] = {}  # session -> body of its latest note
        self.expect: dict[int, tuple[str, str | None, str | None]] = {}
        """Step -> (session, body its rows must hold, body they must no longer hold)."""

    def _add(self, action: str, session: str, sql: str, params: list[Any]) -> int:
        n = len(self.steps) + 1
        tagged = f"{sql} /* step {n} */" if sql else ""
        self.steps.append([action, session, tagged, params])
        return n

    def body(self, session: str, n: int) -> str:
        return f"{session}-{self.token}-{n}"

    def new_note(self, session: str) -> int:
        body = self.body(session, len(self.steps) + 1)
        self.notes[session] = body
        return self._add("write", session, NEW_NOTE, [session, body])

    def edit_note(self, session: str) -> int:
        old, new = self.notes[session], self.body(session, len(self.steps) + 1)
        self.notes[session] = new
        n = self._add("write", session, EDIT_NOTE, [new, session, old])
        self.expect[n + 1] = (session, new, old)  # for the read that follows
        return n

    def my_notes(self, session: str) -> int:
        n = self._add("read", session, MY_NOTES, [session])
        want = self.expect.pop(n, (session, self.notes.get(session), None))
        self.expect[n] = want
        return n

    def pause(self, seconds: float) -> int:
        return self._add("pause", "", "", [seconds])

    def others(self, session: str, author: str) -> int:
        return self._add("read", session, MY_NOTES, [author])

    def count(self, session: str) -> int:
        return self._add("read", session, COUNT_NOTES, [])

    def what(self, n: int) -> str:
        action, session, sql, params = self.steps[n - 1]
        if action == "pause":
            return f"({params[0]:g} s later)"
        if sql.startswith("INSERT"):
            return f"{session} writes a note"
        if sql.startswith("UPDATE"):
            return f"{session} edits the note"
        if sql.startswith("SELECT count"):
            return f"{session} counts all notes"
        whose = "their own" if params[0] == session else f"{params[0]}'s"
        return f"{session} reads {whose} notes"


def _play(ctx: CheckContext, script: Script, timeout: float | None = None) -> Any:
    """Run the script through the learner's Router in one process."""
    ctx.read(ROUTER)  # a missing file fails here, with what to do
    return ctx.run(
        HARNESS_FILE,
        "play",
        ROUTER,
        script.steps,
        clients=("primary", "replica"),
        files={HARNESS_FILE: HARNESS},
        timeout=timeout,
    )


def _ran_on(run: Any, n: int) -> list[str]:
    """The servers whose statements include step n (counted at the proxies)."""
    tag = f"/* step {n} */"
    return [
        name
        for name in ("primary", "replica")
        if name in run.server and any(tag in s for s in run.server[name].statements)
    ]


def _first_line(text: str | None) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[0].strip().rstrip(".") if lines else "(no message)"


def _results(run: Any, script: Script, call: str) -> list[dict[str, Any]]:
    """The steps' results; Fail when the router hung, raised or returned something odd."""
    if run.timed_out or run.limit:
        raise Fail(
            f"{call} did not finish within {run.limit or 'its time limit'}: is a read "
            f"waiting for the replica without a bound?",
            Evidence("its output", "text", run.output or "(none)"),
        )
    if not run.ok:
        raise Fail(
            f"{call} raised {_first_line(run.error)}",
            Evidence("traceback", "text", run.traceback or run.error or "(none)"),
        )
    results = run.value if isinstance(run.value, list) else []
    broken = next((i for i, r in enumerate(results) if "error" in r), None)
    if broken is not None:
        n = broken + 1
        error = results[broken]["error"]
        advice = ""
        if "read-only" in error or "ReadOnlySqlTransaction" in error:
            advice = " The replica refuses every write: writes go to the primary."
        raise Fail(
            f"Step {n} ({script.what(n)}) raised {_first_line(error)}.{advice}",
            _steps_evidence(run, script, results),
        )
    if len(results) != len(script.steps):
        raise Fail(f"{call} played {len(results)} of {len(script.steps)} steps.")
    return results


def _holds(rows: list[Any], body: str | None) -> bool:
    return body is not None and any(body in (str(v) for v in row) for row in rows)


def _steps_evidence(run: Any, script: Script, results: list[dict[str, Any]]) -> Evidence:
    rows = []
    for n in range(1, len(script.steps) + 1):
        result = results[n - 1] if n <= len(results) else {}
        where = " and ".join(_ran_on(run, n)) or "(no server)"
        if script.steps[n - 1][0] == "pause":
            where, outcome = "", ""
        elif "error" in result:
            outcome = "raised " + _first_line(result["error"])[:60]
        elif n in script.expect and result:
            _, want, gone = script.expect[n]
            seen = _holds(result["rows"], want) and not _holds(result["rows"], gone)
            outcome = "saw the write" if seen else "MISSED the write"
        elif result and script.steps[n - 1][0] == "write":
            outcome = "written"
        elif result:
            outcome = f"{len(result['rows'])} row(s)"
        else:
            outcome = "not played"
        rows.append((n, script.what(n), where, outcome))
    return Evidence(
        "each step, and the server that ran it (counted at the servers)",
        "table",
        (("step", "what", "ran on", "outcome"), rows),
    )


def _positions(ctx: CheckContext) -> Evidence:
    """Where the WAL stands on each server now: the replica's lag, measured on the replica."""
    primary = ctx.pg("primary").execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]
    received, replayed = (
        ctx.pg("replica")
        .execute("SELECT pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text")
        .fetchone()
    )
    return Evidence(
        "WAL positions right after the run",
        "table",
        (
            ("server", "function", "position"),
            [
                ("primary", "pg_current_wal_lsn()", primary),
                ("replica", "pg_last_wal_receive_lsn()", received),
                ("replica", "pg_last_wal_replay_lsn()", replayed),
            ],
        ),
    )


def _on_replica(ctx: CheckContext, body: str) -> bool:
    row = ctx.pg("replica").execute("SELECT 1 FROM notes WHERE body = %s", (body,)).fetchone()
    return row is not None


def _lateness(ctx: CheckContext, body: str, label: str) -> str:
    """When the replica showed a note the router missed, watched from now on the replica."""
    if _on_replica(ctx, body):
        return f"The replica has {label} by now"
    start = time.monotonic()
    while time.monotonic() - start < SEEN_WITHIN:
        time.sleep(POLL)
        if _on_replica(ctx, body):
            return (
                f"Right after the run the replica still lacked {label}; it appeared there "
                f"{time.monotonic() - start:.1f} s later"
            )
    return f"The replica still lacked {label} {SEEN_WITHIN:g} s after the run"


def _catch_up(ctx: CheckContext) -> None:
    """Wait (a few seconds at most) until the replica has replayed all the primary holds.

    Then the first write of a check is the only WAL the replica lacks, so a router that
    compares the wrong position (one taken before the write, or before its COMMIT) shows
    it: earlier commits still being replayed would send it to the primary by luck.
    """
    target = ctx.pg("primary").execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]
    deadline = time.monotonic() + APPLY_DELAY + HOLD + 1
    while time.monotonic() < deadline:
        row = (
            ctx.pg("replica")
            .execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,))
            .fetchone()
        )
        if row[0]:
            return
        time.sleep(POLL)


def _missed(script: Script, results: list[dict[str, Any]]) -> list[int]:
    """Read steps whose rows lack the session's own latest write (or show an old one)."""
    return [
        n
        for n, (_, want, gone) in script.expect.items()
        if not _holds(results[n - 1]["rows"], want) or _holds(results[n - 1]["rows"], gone)
    ]


@check("own-writes")
def own_writes(ctx: CheckContext) -> Pass:
    """Three users each write and read straight away: each sees what they wrote."""
    s = Script()
    s.new_note("ana")
    s.my_notes("ana")
    s.pause(AGAIN_AFTER)
    s.my_notes("ana")
    s.new_note("ben")
    s.my_notes("ben")
    s.edit_note("ana")
    s.my_notes("ana")
    s.new_note("cy")
    s.my_notes("cy")
    _catch_up(ctx)
    run = _play(ctx, s)
    results = _results(run, s, "The router")
    table = _steps_evidence(run, s, results)
    unread = [n for n in s.expect if not _ran_on(run, n)]
    missed = _missed(s, results)
    if missed:
        n = missed[0]
        session = s.expect[n][0]
        positions = _positions(ctx)
        where = " and ".join(_ran_on(run, n)) or "no server"
        last, body, _ = s.expect[missed[-1]]
        late = _lateness(ctx, body or "", f"{last}'s last note")
        raise Fail(
            f"{session} wrote, then read their notes at once (step {n}, run on {where}): "
            f"the write was missing, in {len(missed)} of {len(s.expect)} such reads. "
            f"{late} (measured on the replica): it replays each commit about "
            f"{APPLY_DELAY:g} s after the primary. A session that has just written must "
            f"read from a server that has its write.",
            table,
            positions,
        )
    if unread:
        n = unread[0]
        raise Fail(
            f"Step {n} ({s.what(n)}) returned rows, but neither server received its "
            f"SELECT: reads must run on a server (a copy kept in the router goes stale, "
            f"and other app servers never see it).",
            table,
        )
    places = Counter(" and ".join(_ran_on(run, n)) for n in s.expect)
    spread = ", ".join(f"{k} {v}" for k, v in sorted(places.items()))
    return Pass(
        f"Each of {len(s.expect)} reads right after a write saw it (they ran on: {spread}).",
        table,
    )


@check("reads-reach-replica")
def reads_reach_replica(ctx: CheckContext) -> Pass:
    """Users who did not write read from the replica, even just after someone else wrote."""
    s = Script()
    s.new_note("dee")
    others = [s.others("eve", "dee"), s.count("eve"), s.others("fay", "user3")]
    s.my_notes("dee")
    others += [s.others("eve", "dee"), s.count("fay")]
    run = _play(ctx, s)
    results = _results(run, s, "The router")
    table = _steps_evidence(run, s, results)
    writes = [n for n, step in enumerate(s.steps, 1) if step[0] == "write"]
    astray = [n for n in writes if _ran_on(run, n) != ["primary"]]
    if astray:
        raise Fail(f"Step {astray[0]} ({s.what(astray[0])}) did not run on the primary.", table)
    on_primary = [n for n in others if "primary" in _ran_on(run, n)]
    on_replica = [n for n in others if "replica" in _ran_on(run, n)]
    totals = {name: len(stats.statements) for name, stats in run.server.items()}
    counted = Evidence(
        "statements each server received",
        "table",
        (("server", "statements"), sorted(totals.items())),
    )
    if on_primary:
        n = on_primary[0]
        raise Fail(
            f"eve and fay never wrote, yet {len(on_primary)} of their {len(others)} reads "
            f"ran on the primary (counted at the servers; the first: step {n}, "
            f"{s.what(n)}). A replica adds read capacity only for the reads it serves: "
            f"keep the primary for the sessions whose own writes the replica lacks.",
            table,
            counted,
        )
    if len(on_replica) < len(others):
        n = next(n for n in others if n not in on_replica)
        raise Fail(
            f"Step {n} ({s.what(n)}) returned rows, but the replica never received its "
            f"SELECT (counted at the servers): reads must run on a server.",
            table,
            counted,
        )
    return Pass(
        f"All {len(others)} reads of users who had not written ran on the replica "
        f"(counted at the servers), just after dee wrote; dee's write ran on the primary.",
        table,
    )


class _ReplayHold:
    """Hold the replica's replay back: see the module's docstring."""

    def __init__(self, ctx: CheckContext) -> None:
        self.ctx = ctx
        self.conns: list[Any] = []

    def __enter__(self) -> _ReplayHold:
        import psycopg

        try:
            for instance in ("replica", "primary"):
                conn = psycopg.connect(
                    self.ctx.url("postgres", instance),
                    autocommit=True,
                    connect_timeout=5,
                    options="-c lock_timeout=3s -c statement_timeout=10s",
                    application_name="sdtutor-replay-hold",
                )
                self.conns.append(conn)
                conn.execute("BEGIN")
                if instance == "replica":
                    conn.execute("SELECT count(*) FROM replay_gate")
                else:
                    conn.execute("LOCK TABLE replay_gate IN ACCESS EXCLUSIVE MODE")
        except psycopg.Error as exc:
            self.__exit__()
            raise Fail(
                f"The checker could not hold the replica's replay back: "
                f"{_first_line(str(exc))}. It locks the table replay_gate: leave that "
                f"table alone, and end any session that holds it (`sdtutor lab stop` and "
                f"start again if unsure)."
            ) from None
        return self

    def __exit__(self, *exc: object) -> None:
        # The replica's transaction first: replay goes on at once.
        for conn in self.conns:
            with contextlib.suppress(Exception):
                conn.execute("ROLLBACK")
            with contextlib.suppress(Exception):
                conn.close()
        self.conns = []


@check("bounded-wait")
def bounded_wait(ctx: CheckContext) -> Pass:
    """With the replica's replay held back, a user who wrote still sees it, promptly."""
    s = Script()
    s.new_note("gil")
    s.my_notes("gil")
    s.others("hal", "gil")
    with _ReplayHold(ctx):
        run = _play(ctx, s, timeout=HOLD)
        held = not _on_replica(ctx, s.notes["gil"])
        positions = _positions(ctx)
    if run.timed_out:
        raise Fail(
            f"The checker held the replica's replay back, and gil's read did not return "
            f"within {HOLD:g} s. A replica can stop replaying (a long query, a network "
            f"cut, an operator's pause); a read that waits for it without a bound hangs "
            f"the app. Wait a short, fixed time at most, then read from the primary.",
            positions,
            Evidence("its output", "text", run.output or "(none)"),
        )
    results = _results(run, s, "The router")
    table = _steps_evidence(run, s, results)
    if not held and _missed(s, results):
        raise CannotCheck(
            "the replica replayed gil's write although the checker held its replay back"
        )
    missed = _missed(s, results)
    if missed:
        where = " and ".join(_ran_on(run, missed[0])) or "no server"
        raise Fail(
            f"The checker held the replica's replay back (it received the WAL, but "
            f"replayed nothing new), and gil's read of their own notes, run on {where}, "
            f"missed the note they had just written. A fixed sleep only guesses how far "
            f"behind the replica is, and the position it has received is not the position "
            f"it has replayed: compare your write's position with what the replica has "
            f"replayed, and read from the primary when it is behind.",
            table,
            positions,
        )
    if not held:
        note = "(the replica had caught up: the hold did not take)"
    else:
        note = "while the replica had not replayed it (measured on the replica)"
    return Pass(
        f"With replay held back, gil's read saw their note {note}, and the call returned "
        f"within {HOLD:g} s.",
        table,
    )


# ------------------------------------------------------------------ the shards

_PLACED: dict[tuple[str, str], list[list[Any]] | Fail] = {}


def _place(ctx: CheckContext, cases: list[dict[str, Any]], fresh: bool = False) -> list[list[Any]]:
    """shard_for over each case's keys, in one learner process (`fresh`: a new
    interpreter, with a str hash salt of its own)."""
    run = ctx.run(HARNESS_FILE, "place", SHARD, cases, files={HARNESS_FILE: HARNESS}, fresh=fresh)
    if run.timed_out or run.limit:
        within = f"within {ctx.lab.time_limit:g} s" if run.timed_out else f"({run.limit} limit)"
        raise Fail(
            f"Placing {sum(len(c['keys']) for c in cases):,} keys with shard_for did not "
            f"finish {within}: it must be quick, a hash and a few comparisons per key.",
            Evidence("its output", "text", run.output or "(none)"),
        )
    if not run.ok:
        raise Fail(
            f"shard_for raised {_first_line(run.error)}",
            Evidence("traceback", "text", run.traceback or run.error or "(none)"),
        )
    placed = run.value
    for case, shards in zip(cases, placed, strict=True):
        for (tenant, key), shard in zip(case["keys"], shards, strict=True):
            if shard not in case["shards"]:
                raise Fail(
                    f"shard_for({tenant!r}, {key!r}, {case['shards']!r}) returned "
                    f"{shard!r}: it must return one of the shard names it is given."
                )
    return list(placed)


def _placements(ctx: CheckContext) -> list[list[Any]]:
    """Placements of KEYS on four and five shards and HOT_KEYS on four, one process,
    computed once for the checks of one run (keyed by the file's text)."""
    key = (str(ctx.workspace), ctx.read(SHARD))
    if key not in _PLACED:
        _PLACED.clear()
        try:
            _PLACED[key] = _place(
                ctx,
                [
                    {"keys": KEYS, "shards": SHARDS},
                    {"keys": KEYS, "shards": GROWN},
                    {"keys": HOT_KEYS, "shards": SHARDS},
                ],
            )
        except Fail as failed:
            _PLACED[key] = failed  # a shard_for that hangs is run once, not four times
    placed = _PLACED[key]
    if isinstance(placed, Fail):
        raise Fail(placed.message, *placed.evidence)
    return placed


def _shares(placed: list[Any], shards: list[str]) -> Evidence:
    counts = Counter(placed)
    fair = len(placed) / len(shards)
    rows = [(s, counts[s], f"{counts[s] / fair:.0%} of an equal share") for s in shards]
    return Evidence("keys per shard", "table", (("shard", "keys", "share"), rows))


@check("even-spread")
def even_spread(ctx: CheckContext) -> Pass:
    """4,000 keys of 400 tenants spread evenly over four shards, and over five."""
    four, five, _ = _placements(ctx)
    for placed, shards in ((four, SHARDS), (five, GROWN)):
        counts = Counter(placed)
        fair = len(placed) / len(shards)
        low, high = min(shards, key=counts.__getitem__), max(shards, key=counts.__getitem__)
        if max(fair - counts[low], counts[high] - fair) > EVEN * fair:
            raise Fail(
                f"Over {len(shards)} shards, the {len(placed):,} keys split unevenly: "
                f"{high} holds {counts[high]:,} and {low} {counts[low]:,}, where an equal "
                f"share is {fair:,.0f}. The busiest shard sets the cost of the whole fleet. "
                f"A hash ring with one point per shard cuts it into arcs of very different "
                f"lengths: give each shard many points (virtual nodes). Rendezvous scores "
                f"taken from a checksum such as crc32 move together from shard to shard: "
                f"take them from a hash in hashlib.",
                _shares(placed, shards),
            )
    return Pass(
        f"Every shard holds within {EVEN:.0%} of an equal share, over four shards and five.",
        _shares(five, GROWN),
    )


@check("stable-placement")
def stable_placement(ctx: CheckContext) -> Pass:
    """A key lands on the same shard in every process."""
    first = _placements(ctx)[0]
    (again,) = _place(ctx, [{"keys": KEYS, "shards": SHARDS}], fresh=True)
    moved = [i for i, (a, b) in enumerate(zip(first, again, strict=True)) if a != b]
    if moved:
        tenant, key = KEYS[moved[0]]
        raise Fail(
            f"In a second process, {len(moved):,} of {len(KEYS):,} keys landed on another "
            f"shard (({tenant!r}, {key!r}) went to {first[moved[0]]}, then to "
            f"{again[moved[0]]}). Every app server, and every restart, must agree on where "
            f"a key lives, or it cannot find what another wrote. Python's built-in hash() "
            f"of a str changes from process to process: use a hash whose value is fixed, "
            f"from hashlib."
        )
    return Pass(f"All {len(KEYS):,} keys landed on the same shard in two processes.")


@check("add-a-shard")
def add_a_shard(ctx: CheckContext) -> Pass:
    """A fifth shard takes about a fifth of the keys; the rest stay where they are."""
    four, five, _ = _placements(ctx)
    moved = [i for i, (a, b) in enumerate(zip(four, five, strict=True)) if a != b]
    between = sum(1 for i in moved if five[i] != GROWN[-1])
    share = len(moved) / len(KEYS)
    table = Evidence(
        "adding shard4",
        "table",
        (
            ("", "keys"),
            [
                ("keys", len(KEYS)),
                ("moved", f"{len(moved)} ({share:.0%})"),
                ("moved to the new shard4", len(moved) - between),
                ("moved between the old shards", between),
            ],
        ),
    )
    if share > MOVED_AT_MOST:
        raise Fail(
            f"Adding a fifth shard moved {len(moved):,} of {len(KEYS):,} keys ({share:.0%}). "
            f"The new shard should take about 1/5 of them ({len(KEYS) // 5:,}) and nothing "
            f"else should move; every moved key is data copied between servers while the "
            f"app runs. A hash taken modulo the number of shards changes for most keys "
            f"when that number changes: consistent hashing or rendezvous hashing do not.",
            table,
        )
    return Pass(
        f"Adding shard4 moved {len(moved):,} of {len(KEYS):,} keys ({share:.0%}; 1/5 is the "
        f"least possible).",
        table,
    )


@check("hot-tenant")
def hot_tenant(ctx: CheckContext) -> Pass:
    """One tenant with 1,000 records does not land on one shard."""
    hot = _placements(ctx)[2]
    counts = Counter(hot)
    fair = len(hot) / len(SHARDS)
    top = max(SHARDS, key=lambda s: counts[s])
    if counts[top] > HOT_AT_MOST * fair:
        raise Fail(
            f"{HOT_TENANT} has {len(hot):,} records, and {top} holds {counts[top]:,} of them: "
            f"a shard key with the tenant alone sends a big tenant's whole load to one "
            f"server, however many shards there are. Place each record by the tenant and "
            f"its key together.",
            _shares(hot, SHARDS),
        )
    return Pass(
        f"{HOT_TENANT}'s {len(hot):,} records spread over all four shards (at most "
        f"{counts[top]} on one).",
        _shares(hot, SHARDS),
    )
