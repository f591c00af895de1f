"""Checks for the load-balancing lab: judged where the requests land.

The checker plays the fleet: real HTTP servers in its own process on 127.0.0.1, each
recording every request that reaches it (in one global order) and every health probe it
answers. On cue a backend holds requests until released (a slow server), answers 500,
fails its health endpoint, drops a request it has read, or stops listening (connection
refused). The learner's balancer.py is started through the runner with a config file
naming these backends, and the checks send it requests and read the backends' records:
counts, order and status codes, never timings.

Nothing waits on the clock for a verdict. A request is sent only once the one before it
has been held at a backend, or answered and its connection closed by the balancer (its
handler, and any count it keeps, is done then); health verdicts wait for the probes the
backend itself answered. Wall-clock caps only stop a wait for a balancer that never
gets there, and are generous for a loaded machine. Where a balancer's own timeouts could
end a held request early, what the backend sees as still open is what is judged.

The hash ring (ring.py) is judged from its raw placements of 10,000 keys, computed in one
learner call (harness.place), and placed again in a fresh interpreter
(`ctx.run(..., fresh=True)`): learner calls are forked from one warm process and share
Python's hash salt, so only a new interpreter shows a hash() that changes between
processes. Sticky routing is judged against that fresh interpreter's placements too. One
balancer process serves the checks that need no health faults (weighted, retries,
sticky), started once per run (`ctx.once`).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sdtutor.errors import LabError
from sdtutor.lab.checks import CheckContext, Evidence, Fail, Pass, check

BALANCER, RING = "balancer.py", "ring.py"
CONFIG_FILE = "sdtutor-fleet.json"  # the config the checker writes beside balancer.py
HARNESS = Path(__file__).with_name("harness.py")
HARNESS_FILE = "sdtutor_lb_harness.py"  # its name in the sandbox

INTERVAL = 0.2  # seconds between health checks, as the learner's config says
FALL, RISE = 2, 2  # failed checks in a row that take a backend out; passes that bring it back
# The probe timeout is generous: the backends answer at once, and on a busy machine a
# tight one would make the balancer's own probes fail for no fault of the backend.
NO_HEALTH = {"path": "/health", "interval": 30.0, "timeout": 2.0, "fall": FALL, "rise": RISE}
HEALTH = {**NO_HEALTH, "interval": INTERVAL}
MARGIN = 2  # probes past `fall` (or `rise`) before judging: the balancer has read the last
PROBE_WAIT = 8.0  # seconds to wait for probes that should come every INTERVAL
SAMPLE = 18  # requests sent after a backend goes out, and after it comes back
PLACE_WAIT = 10.0  # seconds a request may take to reach a backend (or be answered)
CLOSE_WAIT = 5.0  # seconds to wait for the balancer to close a client's connection
START_WAIT = 15.0  # seconds the balancer may take to listen on its port

WEIGHTS = {"a": 5, "b": 3, "c": 1}
CYCLES = 8  # rounds of sum(WEIGHTS) requests
SLACK = 0.05  # how far from its weighted share a backend may be, as a share of all requests
LONGEST_RUN = 3  # most requests in a row to one backend that 5:3:1 interleaved allows

STICKY = list(WEIGHTS)  # the backends of the sticky check, and its users
USERS = [f"user-{i}" for i in range(30)]
NODES = [f"cache-{i:02d}" for i in range(1, 11)]
NEW_NODE = "cache-11"
GONE_NODE = NODES[3]
KEYS = [f"user:{i * 7919 % 100_003}" for i in range(10_000)]
AGAIN = 2_000  # of KEYS placed again in a fresh interpreter (hash() moves nearly all)
EVEN = (0.6, 1.5)  # a node's keys, as a share of an equal share
MOVE_MAX = 0.15  # adding an 11th node may move at most this share of keys (1/11 is 9%)


# ------------------------------------------------------------------ the fleet


def _closed(sock: socket.socket) -> bool:
    """The peer has closed (or reset) this connection; it sent nothing more."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except (OSError, ValueError):
        return True


class Hit:
    """One request that reached a backend: when (a global order), what, and the requests
    each backend held open (not yet closed by the balancer) as it arrived."""

    def __init__(
        self, order: int, method: str, path: str, user: str, open_: dict[str, list[Hit]]
    ) -> None:
        self.order, self.method, self.path, self.user = order, method, path, user
        self.open = open_
        self.given_up = False  # held, but the balancer answered or sent it elsewhere


class Backend:
    """One backend server the checker runs, and what reached it. Its port is held by a
    bound socket that never listens, so that it stays ours while the backend refuses
    connections (no listener: the kernel refuses them) and can listen on it again."""

    def __init__(self, name: str, fleet: Fleet) -> None:
        self.name = name
        self.fleet = fleet
        self.mode = "ok"  # ok | hold | error | drop
        self.health_ok = True
        self.hits: list[Hit] = []
        self.held: list[tuple[socket.socket, Hit]] = []  # requests being held
        self.probes: list[bool] = []  # each health probe answered: passed or failed
        self.server: _Server | None = None
        self.reserve = socket.socket()
        self.reserve.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self.reserve.bind(("127.0.0.1", 0))
        self.port = self.reserve.getsockname()[1]
        self.listen()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def listen(self) -> None:
        """Start (or start again) answering on this backend's port."""
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.backend = self
        self.server = server
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()

    def refuse(self) -> None:
        """Stop listening: connections to the port are refused."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def close(self) -> None:
        self.refuse()
        self.reserve.close()

    def open_now(self) -> list[Hit]:
        """Held requests whose connection the balancer has not closed (call under the
        fleet's lock): what least connections should count as in flight here."""
        self.held = [(s, hit) for s, hit in self.held if not _closed(s)]
        return [hit for _, hit in self.held]

    def probes_since(self, start: int, passed: bool) -> int:
        """Probes answered since index `start` with this result, in a row at the end."""
        n = 0
        for result in reversed(self.probes[start:]):
            if result != passed:
                break
            n += 1
        return n

    def since(self, mark: int, method: str = "") -> list[Hit]:
        return [h for h in self.hits if h.order > mark and (not method or h.method == method)]

    def count(self, since: int = 0, method: str = "") -> int:
        return len(self.since(since, method))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    allow_reuse_port = True  # shares the port with the backend's reserve socket
    backend: Backend


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def _serve(self) -> None:
        backend = self.server.backend
        fleet = backend.fleet
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path.split("?")[0] == "/health":  # a probe, by whatever method
            ok = backend.health_ok
            with fleet.cond:
                backend.probes.append(ok)
                fleet.cond.notify_all()
            self._send(200 if ok else 503, {"ok": ok})
            return
        user = self.headers.get("X-User") or body.decode(errors="replace")
        with fleet.cond:
            open_ = {b.name: b.open_now() for b in fleet.backends.values()}
            hit = Hit(fleet.next_order(), self.command, self.path, user, open_)
            backend.hits.append(hit)
            mode = backend.mode
            gate = fleet.gate
            if mode == "hold":
                backend.held.append((self.connection, hit))
                fleet.holding.append(hit)
                fleet.held += 1
                fleet.cond.notify_all()
        if mode == "hold":
            gate.wait(60)
            with fleet.cond:
                fleet.held -= 1
                with contextlib.suppress(ValueError):
                    backend.held.remove((self.connection, hit))
        if mode == "drop":  # read the request, then hang up without a word
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if mode == "error":
            self._send(500, {"backend": backend.name, "error": "boom"})
            return
        self._send(200, {"backend": backend.name})

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        with contextlib.suppress(OSError):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Fleet:
    """The backends of one check, and the clients the checker sends through the balancer."""

    def __init__(self, names: list[str]) -> None:
        self.cond = threading.Condition()
        self.order = 0
        self.held = 0
        self.gate = threading.Event()
        self.sent = 0  # client requests sent by `place`
        self.finished = 0  # ... that have their answer (and their connection closed)
        self.answered: set[str] = set()  # the paths of those
        self.holding: list[Hit] = []  # requests held since the last release
        self.close_wait = CLOSE_WAIT  # 0 once the balancer kept a connection open
        self.backends: dict[str, Backend] = {}
        for name in names:
            self.backends[name] = Backend(name, self)

    def next_order(self) -> int:
        self.order += 1
        return self.order

    def __getitem__(self, name: str) -> Backend:
        return self.backends[name]

    def config(
        self, policy: str, health: dict[str, Any], weights: dict[str, int] | None = None
    ) -> bytes:
        """balancer.py's config for this fleet."""
        backends = [
            {"name": b.name, "url": b.url, "weight": (weights or {}).get(b.name, 1)}
            for b in self.backends.values()
        ]
        return json.dumps(
            {"policy": policy, "backends": backends, "health": health, "hash_header": "X-User"},
            indent=2,
        ).encode()

    def release(self) -> None:
        """Let every held request go on, and stop holding. A held request the balancer
        gave up on first (its client was answered, or it went to another backend too:
        the balancer's own timeout, say) is marked: it no longer counted as in flight."""
        with self.cond:
            paths = Counter(h.path for b in self.backends.values() for h in b.hits)
            for hit in self.holding:
                hit.given_up = hit.path in self.answered or paths[hit.path] > 1
            self.holding = []
            for b in self.backends.values():
                if b.mode == "hold":
                    b.mode = "ok"
            self.gate.set()
            self.gate = threading.Event()

    def wait(self, what: Callable[[], bool], timeout: float) -> bool:
        """Wait until `what()` holds (checked whenever a backend or a client reports)."""
        with self.cond:
            return self.cond.wait_for(what, timeout)

    def close(self) -> None:
        self.release()
        for b in self.backends.values():
            b.close()

    def since(self, mark: int) -> list[tuple[str, Hit]]:
        """(backend, hit) of every request after `mark`, in the order they arrived."""
        hits = [(b.name, h) for b in self.backends.values() for h in b.since(mark)]
        return sorted(hits, key=lambda x: x[1].order)

    def table(self, since: int = 0, method: str = "") -> list[tuple[str, int]]:
        return [(b.name, b.count(since, method)) for b in self.backends.values()]


@contextlib.contextmanager
def fleet(names: list[str]) -> Iterator[Fleet]:
    f = Fleet(names)
    try:
        yield f
    finally:
        f.close()


class Reply:
    """What a client got from the balancer (status 0: no answer, `error` says why)."""

    def __init__(self, status: int = 0, backend: str = "", error: str = "") -> None:
        self.status = status
        self.backend = backend
        self.error = error
        self.closed = False  # the balancer closed the connection after answering

    def text(self) -> str:
        if self.status == 0:
            return f"no answer ({self.error})"
        return f"HTTP {self.status}" + (f" from {self.backend}" if self.backend else "")


def request(
    url: str,
    path: str,
    method: str = "GET",
    user: str = "",
    body: str = "",
    timeout: float = 10,
    close_wait: float = 0,
) -> Reply:
    """One request through the balancer, as a client would send it. With `close_wait`,
    also wait that long for the balancer to close the connection (the client asked it
    to): then the balancer's handler for this request has ended."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    headers = {"Connection": "close"}
    if user:
        headers["X-User"] = user
    watch: socket.socket | None = None
    try:
        conn.connect()
        if close_wait and conn.sock is not None:
            watch = conn.sock.dup()
        conn.request(method, path, body=body.encode() or None, headers=headers)
        response = conn.getresponse()
        raw = response.read()
    except (OSError, http.client.HTTPException) as exc:
        if watch is not None:
            watch.close()
        return Reply(0, error=f"{type(exc).__name__}: {exc}".rstrip(": "))
    finally:
        conn.close()
    try:
        backend = str(json.loads(raw).get("backend", ""))
    except (ValueError, AttributeError):
        backend = ""
    reply = Reply(response.status, backend)
    if watch is not None:
        with watch:
            watch.settimeout(close_wait)
            try:
                while watch.recv(4096):
                    pass
                reply.closed = True
            except TimeoutError:
                pass
            except OSError:  # reset: closed all the same
                reply.closed = True
    return reply


def send_all(url: str, paths: list[str], users: list[str] | None = None) -> list[Reply]:
    """GET each path in turn (with X-User from `users`); stop at the first request that got
    no answer at all, so that a balancer that hangs costs one timeout, not one each."""
    replies: list[Reply] = []
    for i, path in enumerate(paths):
        replies.append(request(url, path, user=users[i] if users else ""))
        if replies[-1].status == 0:
            break
    return replies


def place(f: Fleet, url: str, path: str, replies: list[Reply]) -> bool:
    """Send one request in a thread of its own and wait until it is held at a backend, or
    answered and its connection closed. False if neither happened within PLACE_WAIT."""
    with f.cond:
        held, finished = f.held, f.finished
        f.sent += 1

    def send() -> None:
        reply = request(url, path, timeout=60, close_wait=f.close_wait)
        with f.cond:
            if reply.status and not reply.closed:
                f.close_wait = 0  # it keeps connections open: do not wait for that again
            replies.append(reply)
            f.answered.add(path)
            f.finished += 1
            f.cond.notify_all()

    threading.Thread(target=send, daemon=True).start()
    return f.wait(lambda: f.held > held or f.finished > finished, PLACE_WAIT)


def start(ctx: CheckContext, config: bytes) -> Any:
    """The learner's balancer, started with `config` (its path is its first argument)."""
    try:
        return ctx.service(
            [BALANCER, CONFIG_FILE],
            files={CONFIG_FILE: config},
            ready=("tcp",),
            ready_timeout=START_WAIT,
        )
    except LabError as exc:
        printed = exc.hint.removeprefix("Its last output:\n")
        last = printed.strip().splitlines()[-1:] if "last output" in exc.hint else []
        raise Fail(
            f"The checker started `python {BALANCER} {CONFIG_FILE}` with PORT set, and it "
            f"did not serve: {exc.message}" + (f" Its last line: {last[0][:200]}" if last else ""),
            Evidence("what it printed", "text", printed),
        ) from None


class _Shared:
    """The 5:3:1 fleet and a balancer in front of it, for the checks that make no backend
    fail its health checks (weighted, retries, sticky): one balancer process per run of
    the checks, not one per check. Started again if it has died since; a balancer that
    could not start is not tried again."""

    def __init__(self, ctx: CheckContext) -> None:
        self.ctx = ctx
        self.fleet = Fleet(list(WEIGHTS))
        ctx.on_close(self.fleet.close)
        self.service: Any = None
        self.failed: Fail | None = None

    def get(self) -> tuple[Fleet, Any]:
        if self.failed is not None:
            raise Fail(self.failed.message, *self.failed.evidence)
        if self.service is None or not self.service.alive():
            if self.service is not None:
                self.service.kill()
            try:
                config = self.fleet.config("weighted_round_robin", NO_HEALTH, WEIGHTS)
                self.service = start(self.ctx, config)
            except Fail as failed:
                self.failed = failed
                raise
        return self.fleet, self.service


def shared(ctx: CheckContext) -> tuple[Fleet, Any]:
    return ctx.once("load-balancing:shared", lambda: _Shared(ctx)).get()


def counts_evidence(title: str, rows: list[tuple[str, Any]], header: str = "requests") -> Evidence:
    return Evidence(title, "table", (("backend", header), [(n, str(c)) for n, c in rows]))


def logs(service: Any) -> Evidence:
    return Evidence("your balancer's output", "text", service.logs()[-2000:] or "(none)")


def _bad(replies: list[Reply], service: Any = None) -> list[Reply]:
    """The replies that are not 200; a Fail if one was no answer at all."""
    for i, r in enumerate(replies):
        if r.status == 0:
            raise Fail(
                f"Request {i + 1} through the balancer got no answer: {r.error}. Every "
                "request must be answered: the backend's answer, or a 502 when no backend "
                "can give one. Is a lock held while forwarding, or a thread blocked?",
                *([logs(service)] if service is not None else []),
            )
    return [r for r in replies if r.status != 200]


# ------------------------------------------------------------------ weighted round robin


def _spell(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {counts.get(n, 0)}" for n in WEIGHTS)


def _longest_run(order: list[str]) -> tuple[int, str, int]:
    """The longest run of one backend in `order`: (length, backend, where it starts)."""
    best, who, at, run = 0, "", 0, 0
    for i, name in enumerate(order):
        run = run + 1 if i and order[i - 1] == name else 1
        if run > best:
            best, who, at = run, name, i - run + 1
    return best, who, at


@check("weighted")
def weighted(ctx: CheckContext) -> Pass:
    total = CYCLES * sum(WEIGHTS.values())
    f, service = shared(ctx)
    mark = f.order
    replies = send_all(service.url, [f"/item/{i}" for i in range(total)])
    order = [name for name, _ in f.since(mark)]
    got = Counter(order)
    want = {n: total * w // sum(WEIGHTS.values()) for n, w in WEIGHTS.items()}
    shares = Evidence(
        f"{total} requests, one at a time, weights 5:3:1",
        "table",
        (
            ("backend", "weight", "received", "its share"),
            [(n, str(WEIGHTS[n]), str(got[n]), str(want[n])) for n in WEIGHTS],
        ),
    )
    bad = _bad(replies, service)
    if bad:
        raise Fail(
            f"{len(bad)} of {total} requests failed (first: {bad[0].text()}), with every "
            "backend up and answering. Forward each request to the backend you pick and "
            "pass its answer back.",
            shares,
            logs(service),
        )
    if not order:
        raise Fail(
            f"The clients got {len(replies)} answers, but none of the requests reached a "
            "backend: the balancer answered them itself. Forward each request to the "
            "backend you pick.",
            shares,
        )
    off = [n for n in WEIGHTS if abs(got[n] - want[n]) > SLACK * total]
    if off:
        seen = ", ".join(f"{n} {got[n]}" for n in WEIGHTS)
        wanted = ", ".join(f"{n} {want[n]}" for n in WEIGHTS)
        even = max(got.values()) - min(got.values()) <= SLACK * total if got else False
        why = (
            "The three got about the same: the weights are ignored. "
            if even and len(got) == len(WEIGHTS)
            else ""
        )
        raise Fail(
            f"With weights a=5, b=3, c=1 the backends received {seen}; by weight they "
            f"should have had {wanted}. {why}A bigger server should get proportionally "
            f"more: over every {sum(WEIGHTS.values())} requests, a gets 5, b 3 and c 1, as "
            "exactly as the count allows (not by chance).",
            shares,
        )
    block = 2 * sum(WEIGHTS.values())
    for first in range(0, total - block + 1, block):
        part = Counter(order[first : first + block])
        if any(abs(part[n] - 2 * w) > 2 for n, w in WEIGHTS.items()):
            raise Fail(
                f"Over all {total} requests the shares are close, but requests "
                f"{first + 1}-{first + block} went "
                + _spell(part)
                + f" (the weights call for {_spell({n: 2 * w for n, w in WEIGHTS.items()})}). "
                "Weighted random choice is right only on average: short stretches come out "
                "lopsided. Weighted round robin follows the weights in every round.",
                shares,
            )
    run, who, at = _longest_run(order)
    if run > LONGEST_RUN:
        window = " ".join(order[max(0, at - 2) : at + run + 2])
        raise Fail(
            f"The shares are right, but {who} received {run} requests in a row (requests "
            f"{at + 1} to {at + run}: {window}). Sending a backend its whole share in one "
            f"burst makes it busiest exactly when the others idle. Interleave: with 5:3:1 "
            f"no backend needs more than {LONGEST_RUN} in a row (smooth weighted round robin "
            "gives a b a c a b a b a).",
            shares,
        )
    return Pass(
        f"{total} requests split {got['a']}:{got['b']}:{got['c']} for weights 5:3:1, "
        f"interleaved (at most {run} in a row to one backend).",
        shares,
    )


# ------------------------------------------------------------------ least connections


def _crowded(arrivals: list[tuple[str, Hit]]) -> list[tuple[int, str, Hit]]:
    """The requests sent to a backend that held more requests open than another did as
    they arrived: what least connections never does. (i, backend, hit), i from 0. Of the
    backend's own, only those the balancer waited on until the end count: one it had
    given up on (and counted out) may still look open here for a moment."""
    crowded = []
    for i, (name, hit) in enumerate(arrivals):
        mine = sum(1 for h in hit.open.get(name, []) if not h.given_up)
        if mine > min((len(held) for held in hit.open.values()), default=0):
            crowded.append((i, name, hit))
    return crowded


def _open_text(hit: Hit) -> str:
    return ", ".join(f"{n} {len(held)}" for n, held in hit.open.items())


@check("least-connections")
def least_connections(ctx: CheckContext) -> Pass:
    with fleet(["a", "b", "c"]) as f:
        service = start(ctx, f.config("least_connections", NO_HEALTH))
        replies: list[Reply] = []

        def send(n: int, step: str) -> list[tuple[str, Hit]]:
            mark = f.order
            for i in range(n):
                if not place(f, service.url, f"/{step}/{i}", replies):
                    raise Fail(
                        f"A request sent through the balancer neither reached a backend nor "
                        f"got an answer within {PLACE_WAIT:g} s ({step}, request {i + 1}). "
                        "Does the balancer handle requests one at a time? Serve each in a "
                        "thread of its own (ThreadingHTTPServer).",
                        counts_evidence("requests so far", f.table()),
                        logs(service),
                    )
            return f.since(mark)

        def settle() -> None:
            """Release what the backends hold; wait until every client has its answer
            and the balancer has closed its connection (its handler is done)."""
            f.release()
            f.wait(lambda: f.finished >= f.sent and f.held == 0, PLACE_WAIT + CLOSE_WAIT)

        try:
            # Step 1: a is slow (holds every request); new requests go where fewest are open.
            f["a"].mode = "hold"
            slow = send(24, "slow")
            settle()
            # Step 2: a and c are busy; b answers 500 to what it gets.
            f["a"].mode = f["c"].mode = "hold"
            f["b"].mode = "error"
            errors = send(9, "errors")
            settle()
            f["b"].mode = "ok"
            # Step 3: everyone holds; in-flight counts alone must spread 9 requests evenly.
            for b in f.backends.values():
                b.mode = "hold"
            even = send(9, "even")
            settle()
        finally:
            service.kill()

    def rows(arrivals: list[tuple[str, Hit]]) -> list[tuple[str, int]]:
        got = Counter(name for name, _ in arrivals)
        return [(n, got[n]) for n in f.backends]

    slow_rows, error_rows, even_rows = rows(slow), rows(errors), rows(even)
    crowded = _crowded(slow)
    if len(crowded) > 1:
        i, name, hit = crowded[0]
        raise Fail(
            f"Backend a was slow: it held every request it got. Yet {len(crowded)} of 24 "
            f"new requests went to a while it held more requests open than b or c, which "
            f"finished theirs at once and sat idle (request {i + 1} went to {name} with "
            f"these open: {_open_text(hit)}). Least connections sends each request to the "
            "backend with the fewest requests in flight: count them up when you forward "
            "and down when the answer (or an error) comes back.",
            counts_evidence("24 requests, a slow", slow_rows),
        )
    crowded = _crowded(even)
    got = dict(even_rows)
    if len(crowded) > 1:
        i, name, hit = crowded[0]
        raise Fail(
            f"After b had answered 500 to {dict(error_rows)['b']} requests, all three "
            f"backends held every request and 9 arrived one by one: they went "
            f"a {got['a']}, b {got['b']}, c {got['c']}, not 3 each (request {i + 1} went to "
            f"{name} with these open: {_open_text(hit)}). An even split is what least "
            "connections gives when every request stays open, so the balancer still "
            "counts some old requests as open. A request that ends badly (a 500, an "
            "exception, a timeout) must leave the count too: decrement in a finally.",
            counts_evidence("a, c slow, b 500s", error_rows),
            counts_evidence("then 9, all slow", even_rows),
        )
    return Pass(
        f"With a slow, a got {dict(slow_rows)['a']} of 24 new requests; after b's errors, 9 "
        f"requests to three busy backends split {got['a']}/{got['b']}/{got['c']}.",
        counts_evidence("24 requests, a slow", slow_rows),
        counts_evidence("9 requests, all slow", even_rows),
    )


# ------------------------------------------------------------------ health checks


def _wait_probes(f: Fleet, name: str, start: int, passed: bool, n: int) -> bool:
    b = f[name]
    return f.wait(lambda: b.probes_since(start, passed) >= n, PROBE_WAIT)


@check("health-checks")
def health_checks(ctx: CheckContext) -> Pass:
    names = ["a", "b", "c"]
    with fleet(names) as f:
        service = start(ctx, f.config("weighted_round_robin", HEALTH))
        try:
            return _health(f, names, service)
        finally:
            service.kill()


def _health(f: Fleet, names: list[str], service: Any) -> Pass:
    if not _wait_probes(f, "b", 0, True, 1):
        raise Fail(
            f"No health check reached any backend within {PROBE_WAIT:g} s (the config "
            f"says GET /health every {INTERVAL:g} s). Run the checks in a thread of "
            "their own, from the moment the balancer starts.",
            logs(service),
        )
    # b fails its health endpoint (it would still serve requests).
    mark = len(f["b"].probes)
    f["b"].health_ok = False
    if not _wait_probes(f, "b", mark, False, FALL + MARGIN):
        got = f["b"].probes_since(mark, False)
        raise Fail(
            f"b started failing GET /health; in {PROBE_WAIT:g} s it was probed only "
            f"{got} time(s) (every {INTERVAL:g} s was asked). Keep probing every "
            "backend every interval, also those failing or out of rotation: a balancer "
            "that stops checking a backend never learns that it came back.",
            logs(service),
        )
    out = f.order
    replies = send_all(service.url, [f"/out/{i}" for i in range(SAMPLE)])
    out_rows = f.table(out)
    if f["b"].count(out):
        raise Fail(
            f"b failed {FALL + MARGIN} health checks in a row (the config's fall is {FALL}), "
            f"yet it still received {f['b'].count(out)} of the next {SAMPLE} requests. Take "
            f"a backend out of rotation after `fall` failed checks in a row.",
            counts_evidence(f"{SAMPLE} sent, b failing", out_rows),
        )
    # b recovers.
    mark = len(f["b"].probes)
    f["b"].health_ok = True
    if not _wait_probes(f, "b", mark, True, RISE + MARGIN):
        got = f["b"].probes_since(mark, True)
        raise Fail(
            f"Once b was out of rotation it got {got} health check(s) in "
            f"{PROBE_WAIT:g} s: a balancer that stops checking a backend it took out "
            "never learns that it came back. Keep probing it every interval.",
            counts_evidence(f"{SAMPLE} sent, b failing", out_rows),
        )
    back = f.order
    replies += send_all(service.url, [f"/back/{i}" for i in range(SAMPLE)])
    back_rows = f.table(back)
    came_back = f["b"].count(back)
    if came_back < SAMPLE // 6:
        raise Fail(
            f"b passed {RISE + MARGIN} health checks in a row again (rise is {RISE}), but "
            f"it received only {came_back} of the next {SAMPLE} requests: it was taken "
            "out and never brought back. After `rise` passes in a row, put it back in "
            "rotation.",
            counts_evidence(f"{SAMPLE} sent, b passing", back_rows),
        )
    # Every backend fails its checks at once: more likely the checks than the fleet.
    marks = {n: len(f[n].probes) for n in names}
    for n in names:
        f[n].health_ok = False
    for n in names:
        _wait_probes(f, n, marks[n], False, FALL + MARGIN)
    down_mark = f.order
    down = send_all(service.url, [f"/all-down/{i}" for i in range(6)])
    bad = _bad(replies, service)
    if bad:
        raise Fail(
            f"{len(bad)} of {2 * SAMPLE} requests failed while at least two backends were "
            f"healthy (first: {bad[0].text()}).",
            logs(service),
        )
    failed = _bad(down, service)
    if failed:
        raise Fail(
            f"Every backend failed its health checks at once (all three still answered "
            f"requests). The balancer answered {failed[0].text()} to "
            f"{len(failed)} of 6 requests. When the whole fleet looks down, the "
            "checks (or a shared dependency) are more likely wrong than every server: "
            "fail open and keep sending traffic to all of them, as Envoy's panic "
            "threshold and AWS ALB do.",
            counts_evidence("6 sent, all failing", f.table(down_mark)),
        )
    return Pass(
        f"b was taken out after failing its checks (0 of {SAMPLE} requests), brought back "
        f"after passing again ({came_back} of {SAMPLE}), and with every check failing the "
        "balancer failed open.",
        counts_evidence(f"{SAMPLE} sent, b failing", out_rows),
        counts_evidence(f"{SAMPLE} sent, b passing", back_rows),
    )


# ------------------------------------------------------------------ retries

GETS, POSTS = 15, 18  # GETs sent while b refuses; most POSTs sent while b drops them
DROPPED = 3  # POSTs that must reach b (and be dropped) before the check stops sending


@check("retries")
def retries(ctx: CheckContext) -> Pass:
    f, service = shared(ctx)
    b = f["b"]
    mark = f.order
    posts: list[Reply] = []
    try:
        b.refuse()
        gets = send_all(service.url, [f"/catalog/{i}" for i in range(GETS)])
        b.listen()
        b.mode = "drop"
        post_mark = f.order
        for i in range(POSTS):
            posts.append(request(service.url, f"/orders/order-{i}", "POST", body=f"order-{i}"))
            if posts[-1].error.startswith("TimeoutError") or b.count(post_mark) >= DROPPED:
                break
    finally:
        b.mode = "ok"
        if b.server is None:
            b.listen()
    bad = _bad(gets, service)
    if bad:
        raise Fail(
            f"Backend b stopped listening (connection refused). {len(bad)} of {GETS} GET "
            f"requests failed for the client (first: {bad[0].text()}). A refused "
            "connection means the request never reached b: send it to another backend "
            "instead of handing the client an error.",
            counts_evidence("GETs, b refusing", f.table(mark, "GET")),
        )
    if posts and posts[-1].error.startswith("TimeoutError"):
        raise Fail(
            f"Backend b read POST {f'/orders/order-{len(posts) - 1}'} and hung up without "
            f"answering; the client then waited 10 s and got nothing: "
            f"{posts[-1].text()}. Answer 502 when the backend fails a request that must "
            "not go again.",
            logs(service),
        )
    reached: dict[str, list[str]] = {}
    for name, hit in f.since(post_mark):
        if hit.path.startswith("/orders/"):
            reached.setdefault(hit.path.removeprefix("/orders/"), []).append(name)
    twice = {order: where for order, where in reached.items() if len(where) > 1}
    if twice:
        order, where = next(iter(twice.items()))
        raise Fail(
            f"Backend b read each POST /orders it got and then hung up without answering. "
            f"{len(twice)} POST(s) then reached a second backend: {order} went to "
            f"{' then '.join(where)}. b may have taken that order before it hung up; "
            "sending it again can charge a card twice. Retry only requests that are safe "
            "to repeat (GET), or that never reached a backend (connection refused); "
            "answer 502 for the rest.",
            Evidence(
                "each POST and where it arrived",
                "table",
                (("order", "reached"), [(o, ", ".join(w)) for o, w in reached.items()]),
            ),
        )
    dropped = sum(1 for where in reached.values() if where[0] == "b")
    if not dropped:
        raise Fail(
            f"b was listening again, but none of {len(posts)} POSTs reached it, so this "
            "check cannot see what your balancer does with a POST that b reads and drops. "
            "Did the refused connections take b out of rotation? In this lab only the "
            "health checks take a backend out.",
            counts_evidence("POSTs, b listening", f.table(post_mark, "POST")),
        )
    return Pass(
        f"With b refusing connections, all {GETS} GETs were answered 200; the {dropped} "
        "POSTs that reached b before it hung up were not sent anywhere else.",
    )


# ------------------------------------------------------------------ the hash ring


def _last_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[-1] if lines else "an error"


def _ring_run(ctx: CheckContext, fresh: bool) -> dict[str, Any]:
    """One learner call placing every key (and user); `fresh`: in a new interpreter, the
    rings of ten nodes and of the sticky backends only."""
    run = ctx.run(
        HARNESS_FILE,
        "place",
        RING,
        NODES,
        NEW_NODE,
        GONE_NODE,
        KEYS[:AGAIN] if fresh else KEYS,
        STICKY,
        USERS,
        fresh,
        files={HARNESS_FILE: HARNESS},
        fresh=fresh,
    )
    where = " in a fresh Python process" if fresh else ""
    if run.timed_out or run.limit:
        raise Fail(
            f"Placing {len(KEYS):,} keys with HashRing{where} did not finish "
            f"({run.limit or f'within {ctx.lab.time_limit:g} s'}). Look for a loop that "
            "never ends; node_for should be a hash and a binary search (bisect) over the "
            "sorted points, not a walk over every point.",
            Evidence("its output", "text", run.output or "(none)"),
        )
    if not run.ok:
        raise Fail(
            f"HashRing raised{where}: {_last_line(run.error)}",
            Evidence("traceback", "text", run.traceback or run.error or "(none)"),
        )
    value = run.value
    if not isinstance(value, dict):
        raise Fail(f"The placements could not be read{where}: {str(value)[:200]}")
    return value


def _run_ring(ctx: CheckContext) -> dict[str, list[str]]:
    value = _ring_run(ctx, fresh=False)
    again = _ring_run(ctx, fresh=True)
    placed: dict[str, Any] = {
        "ten": value.get("ten"),
        "eleven": value.get("eleven"),
        "nine": value.get("nine"),
        "sticky": value.get("sticky"),
        "elsewhere_ten": again.get("ten"),
        "elsewhere_sticky": again.get("sticky"),
    }
    rings = {  # what each placement was of: the ring's nodes, and how it was made
        "ten": (NODES, f"HashRing({len(NODES)} nodes)"),
        "eleven": ([*NODES, NEW_NODE], f"after add({NEW_NODE!r})"),
        "nine": ([n for n in NODES if n != GONE_NODE], f"after remove({GONE_NODE!r})"),
        "sticky": (STICKY, f"HashRing({STICKY})"),
        "elsewhere_ten": (NODES, f"HashRing({len(NODES)} nodes) in a fresh process"),
        "elsewhere_sticky": (STICKY, f"HashRing({STICKY}) in a fresh process"),
    }
    for name, (nodes, made) in rings.items():
        got = placed[name]
        size = len(USERS) if "sticky" in name else AGAIN if "elsewhere" in name else len(KEYS)
        if not isinstance(got, list) or len(got) != size:
            raise Fail(f"{made}: expected {size:,} placements, got {str(got)[:100]}.")
        strays = [n for n in got if n not in nodes]
        if strays:
            raise Fail(
                f"{made}, node_for returned {strays[0][:60]!r}: it must return one of the "
                f"ring's nodes ({', '.join(nodes[:3])}, ...)."
            )
    return placed


def _placements(ctx: CheckContext) -> dict[str, list[str]]:
    """Placements of KEYS on ten nodes, eleven, ten minus one, and of USERS on the sticky
    check's backends, made once per run (ten and sticky again in a fresh interpreter)."""
    return ctx.once("load-balancing:placements", lambda: _run_ring(ctx))


def _shares(placed: list[str], nodes: list[str]) -> Evidence:
    counts = Counter(placed)
    fair = len(placed) / len(nodes)
    rows = [(n, str(counts[n]), f"{counts[n] / fair:.0%}") for n in nodes]
    return Evidence("keys per node", "table", (("node", "keys", "of an equal share"), rows))


@check("hash-ring")
def hash_ring(ctx: CheckContext) -> Pass:
    placed = _placements(ctx)
    ten, eleven, nine = placed["ten"], placed["eleven"], placed["nine"]
    counts = Counter(ten)
    fair = len(KEYS) / len(NODES)
    low = min(NODES, key=lambda n: counts[n])
    high = max(NODES, key=lambda n: counts[n])
    if counts[low] < EVEN[0] * fair or counts[high] > EVEN[1] * fair:
        raise Fail(
            f"Over 10 nodes, {len(KEYS):,} keys split unevenly: {high} holds "
            f"{counts[high]:,} and {low} {counts[low]:,}, where an equal share is "
            f"{fair:,.0f}. With one point per node the arcs of the ring differ wildly in "
            "length; place each node at many points (virtual nodes, 100 or more).",
            _shares(ten, NODES),
        )
    again = placed["elsewhere_ten"]
    moved = [i for i, (x, y) in enumerate(zip(ten[:AGAIN], again, strict=True)) if x != y]
    if moved:
        i = moved[0]
        raise Fail(
            f"A second Python process built the same ring and placed {len(moved):,} of "
            f"{AGAIN:,} keys elsewhere ({KEYS[i]!r}: {ten[i]}, then {again[i]}). "
            "Balancers run as several processes, often on several machines, and a user "
            "must land on the same backend whichever one answers. Python's hash() of a str "
            "changes from process to process: take positions from hashlib (md5, sha1, "
            "blake2b).",
        )
    grew = [i for i, (x, y) in enumerate(zip(ten, eleven, strict=True)) if x != y]
    elsewhere = [i for i in grew if eleven[i] != NEW_NODE]
    share = len(grew) / len(KEYS)
    moves = Evidence(
        f"adding {NEW_NODE}",
        "table",
        (
            ("keys", "count"),
            [
                ("moved to the new node", str(len(grew) - len(elsewhere))),
                ("moved between old nodes", str(len(elsewhere))),
                ("stayed", str(len(KEYS) - len(grew))),
            ],
        ),
    )
    if not grew:
        raise Fail(
            f"After add({NEW_NODE!r}) every one of {len(KEYS):,} keys stayed where it was: "
            "the new node took none. add() must put the node on the ring (at all its "
            "points), so that it takes about 1/11 of the keys.",
            moves,
        )
    if share > MOVE_MAX:
        raise Fail(
            f"Adding an 11th node to 10 moved {len(grew):,} of {len(KEYS):,} keys "
            f"({share:.0%}), {len(elsewhere):,} of them between old nodes. The least "
            "possible is 1/11 (9%), all onto the new node. A hash taken modulo the number "
            "of nodes changes for most keys when that number changes: every cache behind "
            "the balancer goes cold at once.",
            moves,
        )
    if elsewhere:
        i = elsewhere[0]
        raise Fail(
            f"Adding an 11th node moved {len(elsewhere):,} keys between old nodes "
            f"({KEYS[i]!r} went from {ten[i]} to {eleven[i]}). On a ring, a new node takes "
            "over only the arcs just before its own points: every key that moves, moves "
            "onto it.",
            moves,
        )
    lost = [i for i, (x, y) in enumerate(zip(ten, nine, strict=True)) if x != y]
    needless = [i for i in lost if ten[i] != GONE_NODE]
    if needless:
        raise Fail(
            f"Removing {GONE_NODE} moved {len(lost):,} keys, {len(needless):,} of which "
            f"were not on {GONE_NODE} ({KEYS[needless[0]]!r} went from {ten[needless[0]]} "
            f"to {nine[needless[0]]}). Only the removed node's keys should move.",
        )
    return Pass(
        f"10,000 keys spread within {EVEN[0]:.0%}-{EVEN[1]:.0%} of an equal share, "
        f"{AGAIN:,} of them placed the same in a fresh process; "
        f"an 11th node took {share:.1%} of them, and "
        f"removing {GONE_NODE} moved only its own {len(lost):,}.",
        _shares(ten, NODES),
    )


# ------------------------------------------------------------------ sticky routing


@check("sticky")
def sticky(ctx: CheckContext) -> Pass:
    ring = dict(zip(USERS, _placements(ctx)["elsewhere_sticky"], strict=True))
    f, service = shared(ctx)
    mark = f.order
    users = USERS * 2
    replies = send_all(service.url, [f"/cart/{u}" for u in users], users)
    where: dict[str, set[str]] = {}
    for name, hit in f.since(mark):
        if hit.path.startswith("/cart/"):
            where.setdefault(hit.path.removeprefix("/cart/"), set()).add(name)
    bad = _bad(replies, service)
    if bad:
        raise Fail(f"{len(bad)} requests failed (first: {bad[0].text()}).", logs(service))
    per = Counter(ring.values())
    rows = Evidence(
        "users per backend",
        "table",
        (
            ("backend", "users (your HashRing)", "users (your balancer)"),
            [(n, str(per[n]), str(sum(1 for w in where.values() if w == {n}))) for n in STICKY],
        ),
    )
    split = [u for u in USERS if len(where.get(u, ())) > 1]
    if split:
        u = split[0]
        raise Fail(
            f"{len(split)} of {len(USERS)} users had their two requests sent to different "
            f"backends ({u}: {', '.join(sorted(where[u]))}). A request with an X-User header "
            "is sticky: route it by that key with your HashRing, so that a user's cache "
            "and session stay warm on one backend.",
            rows,
        )
    missing = [u for u in USERS if u not in where]
    if missing:
        raise Fail(
            f"{len(missing)} of {len(USERS)} users got their answers, but their requests "
            f"never reached a backend (GET /cart/{missing[0]} with X-User: {missing[0]}). "
            "Forward every request: the balancer must not answer for the backends.",
            rows,
        )
    elsewhere = [u for u in USERS if where[u] != {ring[u]}]
    if elsewhere:
        u = elsewhere[0]
        raise Fail(
            f"Each user stuck to one backend, but {len(elsewhere)} of {len(USERS)} not to "
            f"the one HashRing({STICKY}) gives in another process ({u}: the balancer sent "
            f"it to {next(iter(where[u]))}, the ring says {ring[u]}). Every balancer "
            "process must route a user the same way: build the ring from the backends' "
            "names, in the config's order, and take positions from a hash that is the same "
            "in every process (hashlib), never Python's hash().",
            rows,
        )
    return Pass(
        f"Each of {len(USERS)} users stayed on one backend, the one your HashRing gives in "
        "another process.",
        rows,
    )
