"""Checks for the observability lab: logs, traces, metrics and an alert, judged from outside.

The checker plays the inventory service: a real HTTP server on 127.0.0.1 that records the
headers of every call it gets and answers each order after a delay the checker chose, so
it knows the true latency of every request. The learner's service is started once per
`lab check`; one batch of traffic (valid, missing and malformed traceparents, secrets in
headers, query strings and bodies, inventory failures) serves every service check, which
then judges the lines the service printed, what reached the inventory, and two scrapes
of /metrics parsed with prometheus_client's own parser. The alert is judged by replaying a
recorded day, one call of should_page per minute, all in one run of the learner's code.
"""

from __future__ import annotations

import http.client
import json
import math
import random
import re
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sdtutor.errors import LabError
from sdtutor.lab.checks import CheckContext, Evidence, Fail, Pass, check

HARNESS = Path(__file__).with_name("harness.py")
HARNESS_FILE = "sdtutor_observability_harness.py"  # its name in the sandbox
FILES: dict[str, str | bytes | Path] = {HARNESS_FILE: HARNESS}

ORDERS = 120  # GET /orders/{id}, each id used once
CHECKOUTS = 10  # POST /checkout, each with a password and a card number
FAILING = 8  # orders the inventory answers 503 (so the service answers 5xx)
WITH_AUTH = 15  # orders sent with an Authorization header
WITH_QUERY_TOKEN = 15  # orders sent with ?access_token=...
CONCURRENCY = 12
SLO_SECONDS = 0.3  # the latency SLO: requests answered within 300 ms
GAP = (0.2, 0.36)  # no inventory delay falls here, so overhead cannot cross the SLO edge
QUANTILES = (0.5, 0.95, 0.99)
TOLERANCE = 0.25  # an estimate may be this far (relative) outside the true range
REQUEST_TIMEOUT = 5.0  # seconds the checker waits for one answer (the slowest takes 0.9)
GIVE_UP_AFTER = 3  # requests left unanswered before the rest are not sent at all

TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
STATUS_VALUE = re.compile(r"^[1-5]([0-9]{2}|xx)$", re.IGNORECASE)


# ------------------------------------------------------------------ the traffic


@dataclass
class Sent:
    """One request the checker sent, and what became of it."""

    kind: str  # "order" or "checkout"
    order: int
    delay: float  # seconds the inventory waits before answering
    fails: bool  # the inventory answers 503
    header: str | None  # the traceparent sent (None: no header)
    header_kind: str  # "valid", "missing" or "malformed"
    secrets: dict[str, str] = field(default_factory=dict)  # what -> value
    status: int = 0
    rtt: float = 0.0
    error: str = ""

    @property
    def incoming_trace(self) -> str | None:
        return self.header.split("-")[1] if self.header_kind == "valid" and self.header else None

    @property
    def request(self) -> str:
        if self.kind == "checkout":
            return f"POST /checkout (order {self.order})"
        query = "?access_token=..." if "query token" in self.secrets else ""
        return f"GET /orders/{self.order}{query}"


@dataclass
class Traffic:
    sent: list[Sent]
    calls: dict[int, dict[str, str]]  # order -> headers the inventory got (lower-case)
    before: str
    after: str
    logs: str
    service: Any
    clipped: int = 0  # bytes the checker keeps, when the service printed more


class Inventory(ThreadingHTTPServer):
    """The checker's inventory service: answers each order as planned, records headers."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, plan: dict[int, Sent]) -> None:
        self.plan = plan
        self.calls: dict[int, dict[str, str]] = {}
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _InventoryHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _InventoryHandler(BaseHTTPRequestHandler):
    server: Inventory

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        match = re.match(r"^/(stock|reserve)/(\d+)", self.path)
        sent = self.server.plan.get(int(match.group(2))) if match else None
        if sent is None:
            self._reply(404, {"error": "no such order"})
            return
        with self.server.lock:
            self.server.calls[sent.order] = {k.lower(): v for k, v in self.headers.items()}
        time.sleep(sent.delay)
        self._reply(503 if sent.fails else 200, {"in_stock": sent.order % 40})

    def _reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _spread(n: int, low: float, high: float) -> list[float]:
    return [low + (high - low) * i / (n - 1) for i in range(n)]


def _delays(rng: random.Random) -> list[float]:
    """The latency the traffic will have: mostly fast, a slow tail past the SLO.

    The same values every run (only their order changes), so a layout of buckets is
    judged the same way every time: p50 is about 50 ms, p95 480 ms, p99 815 ms.
    """
    n = ORDERS + CHECKOUTS
    slow, slower, fast = round(n * 0.06), round(n * 0.04), round(n * 0.6)
    delays = _spread(fast, 0.012, 0.058) + _spread(n - fast - slow - slower, 0.062, 0.18)
    delays += _spread(slow, 0.39, 0.5) + _spread(slower, 0.62, 0.88)
    rng.shuffle(delays)
    return delays


def _traceparent(rng: random.Random, kind: str) -> str | None:
    if kind == "missing":
        return None
    trace, parent = secrets.token_hex(16), secrets.token_hex(8)
    if kind == "valid":
        return f"00-{trace}-{parent}-01"
    return rng.choice(
        [
            "not-a-traceparent",
            f"00-{'0' * 32}-{parent}-01",  # an all-zero trace id is invalid
            f"00-{trace[:31]}-{parent}-01",  # a trace id one digit short
        ]
    )


def _card(rng: random.Random) -> str:
    """A 16-digit test card number that passes the Luhn check."""
    digits = [4] + [rng.randrange(10) for _ in range(14)]
    total = 0
    for i, d in enumerate(reversed(digits)):
        d = d * 2 if i % 2 == 0 else d
        total += d - 9 if d > 9 else d
    return "".join(map(str, digits)) + str((10 - total % 10) % 10)


def _plan() -> list[Sent]:
    rng = random.Random()
    ids = rng.sample(range(100000, 1000000), ORDERS + CHECKOUTS)
    delays = _delays(rng)
    sent: list[Sent] = []
    kinds = ["valid"] * 90 + ["missing"] * 20 + ["malformed"] * 20
    rng.shuffle(kinds)
    for i, (order, delay) in enumerate(zip(ids, delays, strict=True)):
        checkout = i >= ORDERS
        kind = "valid" if checkout else kinds[i]
        one = Sent(
            "checkout" if checkout else "order",
            order,
            delay,
            fails=i < FAILING,
            header=_traceparent(rng, kind),
            header_kind=kind,
        )
        if checkout:
            one.secrets = {
                "Authorization header": "tok" + secrets.token_hex(12),
                "password": "pw-" + secrets.token_hex(8),
                "card number": _card(rng),
            }
        elif FAILING <= i < FAILING + WITH_AUTH:
            one.secrets = {"Authorization header": "tok" + secrets.token_hex(12)}
        elif FAILING + WITH_AUTH <= i < FAILING + WITH_AUTH + WITH_QUERY_TOKEN:
            one.secrets = {"query token": "qt" + secrets.token_hex(12)}
        sent.append(one)
    rng.shuffle(sent)
    return sent


def _http(
    url: str, method: str, path: str, headers: dict[str, str], body: bytes | None = None
) -> tuple[int, bytes, str]:
    """One request; sent once more if the connection closed without an answer. On a
    crowded machine a server can fail to start a thread for a connection (RLIMIT_NPROC
    counts the threads of every process of its user) and closes it: a request that
    really crashes the service fails the same way twice."""
    status, data, error = _http_once(url, method, path, headers, body)
    if status == 0 and error.startswith(("RemoteDisconnected", "ConnectionResetError")):
        time.sleep(0.05)
        status, data, error = _http_once(url, method, path, headers, body)
    return status, data, error


def _http_once(
    url: str, method: str, path: str, headers: dict[str, str], body: bytes | None
) -> tuple[int, bytes, str]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=REQUEST_TIMEOUT)
    try:
        conn.request(method, path, body=body, headers={"Connection": "close", **headers})
        response = conn.getresponse()
        return response.status, response.read(), ""
    except (OSError, http.client.HTTPException) as exc:
        return 0, b"", f"{type(exc).__name__}: {exc}".rstrip(": ")
    finally:
        conn.close()


class _Unanswered:
    """Counts requests the service left unanswered; past GIVE_UP_AFTER the rest are not
    sent, so a service that hangs fails in seconds instead of a timeout per request."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    def add(self) -> None:
        with self.lock:
            self.count += 1

    @property
    def gave_up(self) -> bool:
        return self.count >= GIVE_UP_AFTER


def _send(url: str, one: Sent, unanswered: _Unanswered) -> None:
    if unanswered.gave_up:
        one.error = "not sent: the service had stopped answering"
        return
    headers: dict[str, str] = {}
    if one.header is not None:
        headers["traceparent"] = one.header
    if "Authorization header" in one.secrets:
        headers["Authorization"] = f"Bearer {one.secrets['Authorization header']}"
    started = time.perf_counter()
    if one.kind == "checkout":
        body = json.dumps(
            {
                "order_id": one.order,
                "card_number": one.secrets["card number"],
                "password": one.secrets["password"],
            }
        ).encode()
        headers["Content-Type"] = "application/json"
        one.status, _, one.error = _http(url, "POST", "/checkout", headers, body)
    else:
        path = f"/orders/{one.order}"
        if "query token" in one.secrets:
            path += f"?access_token={one.secrets['query token']}"
        one.status, _, one.error = _http(url, "GET", path, headers)
    one.rtt = time.perf_counter() - started
    if one.status == 0:
        unanswered.add()


def _scrape(url: str) -> str:
    status, body, error = _http(url, "GET", "/metrics", {})
    if status != 200:
        return f"#sdtutor: GET /metrics gave {error or f'HTTP {status}'}"
    return body.decode(errors="replace")


def _traffic(ctx: CheckContext) -> Traffic:
    """The service started once per `lab check`, the traffic sent, what it left."""
    return ctx.once("traffic", lambda: _drive(ctx))


def _drive(ctx: CheckContext) -> Traffic:
    sent = _plan()
    inventory = Inventory({s.order: s for s in sent})
    threading.Thread(target=inventory.serve_forever, args=(0.05,), daemon=True).start()
    try:
        try:
            service = ctx.service(
                [HARNESS_FILE, inventory.url], ready=("http", "/health"), files=FILES
            )
        except LabError as exc:
            raise Fail(
                f"Your app.py could not be started: {exc.message} {exc.hint}".strip()
                + " Run it by hand (PORT=8000 python app.py) and see what it prints."
            ) from None
        before = _scrape(service.url)
        unanswered = _Unanswered()
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            list(pool.map(lambda one: _send(service.url, one, unanswered), sent))
        wanted = {s.incoming_trace for s in sent if s.incoming_trace}
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:  # lines written after the answer was sent
            text = service.logs()
            if all(t in text for t in wanted):
                break
            time.sleep(0.1)
        time.sleep(0.1)
        after = _scrape(service.url)
        time.sleep(0.05)
        logs = service.logs()
        kept = ctx.lab.limits.output_bytes
        clipped = kept if len(logs) >= kept * 0.9 else 0
        return Traffic(sent, dict(inventory.calls), before, after, logs, service, clipped)
    finally:
        inventory.shutdown()
        inventory.server_close()


def _unanswered(traffic: Traffic) -> None:
    """Fail when the service did not answer the traffic as app.py should."""
    bad = [s for s in traffic.sent if s.status == 0]
    bad.sort(key=lambda s: s.error.startswith("not sent"))  # what went wrong first
    if bad:
        skipped = sum(1 for s in bad if s.error.startswith("not sent"))
        raise Fail(
            f"{len(bad) - skipped} of the {len(traffic.sent) - skipped} requests sent got no "
            f"answer (first: {bad[0].request}: {bad[0].error})"
            + (f", and the checker sent no more after {GIVE_UP_AFTER}" if skipped else "")
            + f". Every request must be answered within {REQUEST_TIMEOUT:g} s, whatever it "
            "carries (a token, a malformed traceparent, a JSON body).",
            _log_tail(traffic),
        )
    wrong = [
        s
        for s in traffic.sent
        if (s.fails and s.status < 500) or (not s.fails and not 200 <= s.status < 300)
    ]
    if wrong:
        one = wrong[0]
        raise Fail(
            f"{len(wrong)} requests got an unexpected answer (first: {one.request} answered "
            f"{one.status}; the inventory answered it "
            f"{'503' if one.fails else '200'}). Keep app.py's behaviour: 2xx when the "
            "inventory answers, 5xx when it fails.",
            _log_tail(traffic),
        )


def _log_tail(traffic: Traffic, lines: int = 8) -> Evidence:
    tail = [_clip(line, 240) for line in traffic.logs.splitlines()[-lines:]]
    return Evidence("the last lines your service printed", "text", "\n".join(tail) or "(none)")


def _clip_lines(output: str | None, chars: int = 2000) -> str:
    """The end of a learner's output (a flood of prints shows as its last lines)."""
    if not output:
        return "(none)"
    return output if len(output) <= chars else "...\n" + output[-chars:]


def _clip(text: str, width: int = 150) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


# ------------------------------------------------------------------ task 1: logs


def _lines(logs: str) -> list[tuple[str, Any]]:
    """Every non-empty output line, with its parsed JSON (None when it is not JSON)."""
    out: list[tuple[str, Any]] = []
    for line in logs.splitlines():
        if not line.strip():
            continue
        try:
            out.append((line, json.loads(line)))
        except ValueError:
            out.append((line, None))
    return out


def _expected_trace(one: Sent, calls: dict[int, dict[str, str]]) -> str | None:
    """The trace a request belongs to: the caller's, else the one the service started."""
    if one.incoming_trace:
        return one.incoming_trace
    match = TRACEPARENT.match(calls.get(one.order, {}).get("traceparent", ""))
    return match.group(2) if match else None


def _has_value(obj: Any, value: int, depth: int = 0) -> bool:
    """Whether a log object holds `value` (int or text) in a field, nested ones too
    ({"http": {"status_code": 502}} as the Elastic Common Schema writes it)."""
    if isinstance(obj, dict) and depth < 4:
        return any(_has_value(v, value, depth + 1) for v in obj.values())
    return not isinstance(obj, bool) and (obj == value or obj == str(value))


def _run_together(line: str) -> bool:
    """A line that starts with a whole JSON object and goes on: two writes interleaved."""
    text = line.strip()
    try:
        first, end = json.JSONDecoder().raw_decode(text)
    except ValueError:
        return text.startswith("{") and "}{" in text
    return isinstance(first, dict) and end < len(text)


@check("logs-structured")
def logs_structured(ctx: CheckContext) -> Pass:
    traffic = _traffic(ctx)
    _unanswered(traffic)
    lines = _lines(traffic.logs)
    if not lines:
        raise Fail(
            f"Your service printed nothing while answering {len(traffic.sent)} requests. "
            "Write one JSON line per request to stdout."
        )
    plain = [line for line, obj in lines if not isinstance(obj, dict)]
    glued = [line for line in plain if _run_together(line)]
    if glued:
        raise Fail(
            f"{len(glued)} of the {len(lines)} lines your service printed hold two log lines "
            "run together (below). print() writes the text and the line's end in two "
            "steps, and while one request thread is between them another one's line lands "
            "in the middle. A log shipper then drops or garbles both. Write each line in "
            'one call (sys.stdout.write(text + "\\n"), then flush) or log through the '
            "logging module, whose handlers take a lock for each record.",
            Evidence("lines run together", "text", "\n".join(_clip(x, 300) for x in glued[:2])),
        )
    if plain:
        raise Fail(
            f"{len(plain)} of {len(lines)} lines your service printed are not JSON objects "
            "(the first ones are below). A log search (Loki, Elasticsearch, CloudWatch) can "
            "filter and count JSON fields; free text needs fragile regular expressions. "
            "Write one JSON object per line (json.dumps), for every line.",
            Evidence(
                "lines that are not JSON", "text", "\n".join(_clip(x, 160) for x in plain[:3])
            ),
        )
    objects = [obj for _, obj in lines]
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        if isinstance(obj.get("trace_id"), str):
            by_trace.setdefault(obj["trace_id"], []).append(obj)
    if not by_trace:
        raise Fail(
            f"Your {len(lines)} lines are JSON, but none has a trace_id field, for example:"
            f"\n  {_clip(lines[-1][0])}\nWithout it nobody can go from a slow trace to its "
            "logs, or from this service's logs to its caller's. Put the request's trace id "
            'in every line as "trace_id".',
            _log_tail(traffic),
        )
    missing: list[tuple[Sent, str]] = []
    for one in traffic.sent:
        trace = _expected_trace(one, traffic.calls)
        if trace is None:
            continue  # no trace to look for: the trace check says why
        mine = by_trace.get(trace, [])
        if not mine:
            missing.append((one, f"no line with trace_id {trace}"))
        elif not any(_has_value(obj, one.status) for obj in mine):
            missing.append((one, f"its lines do not say the status ({one.status})"))
        elif not any(isinstance(obj.get("level"), str) for obj in mine):
            missing.append((one, 'its lines have no "level"'))
    if missing and traffic.clipped:
        raise Fail(
            f"Your service printed more than the {traffic.clipped // 1000:,} kB the checker "
            f"keeps for {len(traffic.sent)} requests, and the lines of {len(missing)} of "
            "them came before that (the last lines are below). A line of a few hundred bytes "
            "per request is plenty: logs are shipped, indexed and stored, and paid for by "
            "the byte. Keep debug dumps out of the request path.",
            _log_tail(traffic, 3),
        )
    if missing:
        rows = [(one.request, one.header or "(none)", why) for one, why in missing[:6]]
        example = missing[0][0]
        caller = (
            f"the caller's trace id from its traceparent ({example.incoming_trace})"
            if example.incoming_trace
            else "the trace id the service started (and sent to the inventory)"
        )
        raise Fail(
            f"{len(missing)} of {len(traffic.sent)} requests have no useful log line: "
            f'{example.request} should have a line with {caller}, a "level", and the '
            "status it answered. One line per request, joined to its trace: that is how "
            "you go from a failed request to what happened.",
            Evidence(
                "requests without their line",
                "table",
                (("request", "traceparent sent", "why"), rows),
            ),
            Evidence("a line your service printed", "text", lines[-1][0]),
        )
    return Pass(
        f"All {len(lines)} lines are JSON; each of the {len(traffic.sent)} requests has a "
        "line with its trace_id, level and status.",
        Evidence("a line your service printed", "text", lines[-1][0]),
    )


# ------------------------------------------------------------------ task 2: traces


@check("trace-propagated")
def trace_propagated(ctx: CheckContext) -> Pass:
    traffic = _traffic(ctx)
    _unanswered(traffic)
    rows: list[tuple[str, str, str]] = []
    problems: list[str] = []
    new_traces: list[str] = []
    spans: list[str] = []
    for one in traffic.sent:
        headers = traffic.calls.get(one.order)
        sent = one.header or "(none)"
        if headers is None:
            problems.append(f"{one.request} never reached the inventory")
            rows.append((one.request, sent, "(no call)"))
            continue
        out = headers.get("traceparent")
        match = TRACEPARENT.match(out or "")
        rows.append((one.request, sent, out or "(none)"))
        if out is None:
            problems.append(
                f"{one.request}: the call to the inventory carried no traceparent, so the "
                "trace stops at your service"
            )
        elif not match:
            problems.append(
                f"{one.request}: the call to the inventory carried traceparent {out!r}, "
                "which is not version-traceid-spanid-flags (00-<32 hex>-<16 hex>-<2 hex>, "
                "hex in lowercase)"
            )
        elif match.group(2) == "0" * 32 or match.group(3) == "0" * 16:
            problems.append(
                f"{one.request}: the inventory got traceparent {out}, whose all-zero ids "
                "are invalid: a header with them must start a new trace"
            )
        elif one.incoming_trace and match.group(2) != one.incoming_trace:
            problems.append(
                f"{one.request} came with trace id {one.incoming_trace}, but the call to "
                f"the inventory carried {match.group(2)}: a new trace id splits the "
                "request into two traces that nobody can join. Keep the caller's trace id"
            )
        elif one.incoming_trace and match.group(3) == one.header.split("-")[2]:  # type: ignore[union-attr]
            problems.append(
                f"{one.request}: the call to the inventory names the caller's span "
                f"({match.group(3)}) as its parent. Your service is a span of its own: "
                "make a new span id and send that as the parent"
            )
        else:
            spans.append(match.group(3))
            if not one.incoming_trace:
                new_traces.append(match.group(2))
    if not problems and len(set(new_traces)) < len(new_traces):
        problems.append(
            f"the {len(new_traces)} requests without a valid traceparent started only "
            f"{len(set(new_traces))} different trace ids: every new request needs a new, "
            "random trace id (16 random bytes), or unrelated requests land in one trace"
        )
    if not problems and len(set(spans)) < len(spans) * 0.9:
        problems.append(
            f"{len(spans)} calls to the inventory used only {len(set(spans))} different "
            "span ids: make a new random span id for every request"
        )
    table = Evidence(
        "traceparent in, and what the inventory got",
        "table",
        (("request", "traceparent sent", "traceparent the inventory got"), rows[:8]),
    )
    if problems:
        raise Fail(
            f"{problems[0]}."
            + (
                f" ({len(problems)} of {len(traffic.sent)} requests have a problem.)"
                if len(problems) > 1
                else ""
            ),
            table,
        )
    kinds = {
        k: sum(1 for s in traffic.sent if s.header_kind == k)
        for k in ("valid", "missing", "malformed")
    }
    return Pass(
        f"{kinds['valid']} requests kept their caller's trace id with a new span id; "
        f"{kinds['missing']} without a traceparent and {kinds['malformed']} with a malformed "
        "one each started a new trace.",
        table,
    )


# ------------------------------------------------------------------ task 3: no secrets


def _leak_forms(what: str, value: str) -> list[str]:
    """What of a secret may not appear in the logs: the whole of it, and any part long
    enough to matter. A token or password with a few characters masked is still a token;
    of a card number only the first six and the last four digits may be shown (PCI DSS),
    so any eight digits in a row of it are a leak."""
    if what == "card number":
        grouped = [value[i : i + 4] for i in range(0, 16, 4)]
        runs = [value[i : i + 8] for i in range(len(value) - 7)]
        return [value, " ".join(grouped), "-".join(grouped), *runs]
    part = min(len(value), 12)
    return [value, *(value[i : i + part] for i in range(len(value) - part + 1))]


@check("secrets-redacted")
def secrets_redacted(ctx: CheckContext) -> Pass:
    traffic = _traffic(ctx)
    _unanswered(traffic)
    logs = traffic.logs
    leaked: dict[str, tuple[Sent, str, bool]] = {}  # what -> request, line, only a part
    for one in traffic.sent:
        for what, value in one.secrets.items():
            for form in _leak_forms(what, value):
                at = logs.find(form) if what not in leaked else -1
                if at >= 0:
                    start = logs.rfind("\n", 0, at) + 1
                    end = logs.find("\n", at)
                    line = logs[start : end if end >= 0 else len(logs)]
                    leaked[what] = (one, line, len(form) < len(value))
    with_secrets = sum(1 for s in traffic.sent if s.secrets)
    if leaked:
        what, (one, line, part) = next(iter(leaked.items()))
        others = [w for w in leaked if w != what]
        raise Fail(
            f"The {what} sent with {one.request} is in your logs"
            + (" (masked in part, but enough of it to use)" if part else "")
            + (f" (and so are: {', '.join(others)})" if others else "")
            + ". Logs are copied to many systems, kept for months and read by many people: "
            "a token there is a stolen session, a card number there is a PCI breach. Log an "
            "allowlist of fields you chose, never whole headers, bodies or query strings.",
            Evidence("the line", "text", _clip(line, 600)),
        )
    return Pass(
        f"{with_secrets} requests carried a bearer token, an access_token in the query "
        "string, or a password and card number in the body; none of them reached the logs."
    )


# ------------------------------------------------------------------ metrics, parsed


@dataclass
class Family:
    name: str
    type: str
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]  # (name, labels) -> value


def _families(text: str) -> dict[str, Family]:
    from prometheus_client.parser import text_string_to_metric_families

    found: dict[str, Family] = {}
    for fam in text_string_to_metric_families(text):
        samples = {}
        for s in fam.samples:
            if s.name.endswith("_created"):
                continue
            samples[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
        found[fam.name] = Family(fam.name, fam.type, samples)
    return found


def _metrics(traffic: Traffic) -> tuple[dict[str, Family], dict[str, Family]]:
    if traffic.after.startswith("#sdtutor:"):
        raise Fail(
            traffic.after.removeprefix("#sdtutor: ")
            + ". Serve the metrics at /metrics in the Prometheus text format "
            "(prometheus_client's generate_latest())."
        )
    try:
        return _families(traffic.before), _families(traffic.after)
    except Exception as exc:
        raise Fail(
            f"/metrics is not in the Prometheus text format: the parser says {exc}. Let "
            "prometheus_client write it (generate_latest()).",
            Evidence("/metrics", "text", traffic.after[:2000]),
        ) from None


def _delta(
    before: Family | None, after: Family, suffix: str = ""
) -> dict[tuple[tuple[str, str], ...], float]:
    """Per label set, how much the samples named <family><suffix> grew during the traffic."""
    out: dict[tuple[tuple[str, str], ...], float] = {}
    for (name, labels), value in after.samples.items():
        if name != after.name + suffix:
            continue
        old = before.samples.get((name, labels), 0.0) if before else 0.0
        out[labels] = out.get(labels, 0.0) + value - old
    return out


def _ids_in_labels(after: dict[str, Family], sent: list[Sent]) -> tuple[str, str] | None:
    ids = {str(s.order) for s in sent}
    for fam in after.values():
        for _, labels in fam.samples:
            for label, value in labels:
                if any(m in ids for m in re.findall(r"\d{6}", value)):
                    return fam.name, f'{label}="{value}"'
    return None


def _families_table(before: dict[str, Family], after: dict[str, Family]) -> Evidence:
    rows = []
    for fam in after.values():
        if fam.name.startswith(("python_", "process_")) or fam.name.endswith("_created"):
            continue
        grew = sum(
            _delta(
                before.get(fam.name), fam, "_total" if fam.type == "counter" else "_count"
            ).values()
        )
        series = {
            tuple(kv for kv in labels if kv[0] not in ("le", "quantile"))
            for _, labels in fam.samples
        }
        rows.append((fam.name, fam.type, str(len(series)), f"{grew:g}"))
    return Evidence(
        "metrics on /metrics (without python_ and process_)",
        "table",
        (
            ("family", "type", "series", "grew by during the traffic"),
            rows or [("(none)", "", "", "")],
        ),
    )


_NOTHING_GREW = (
    " Nothing on /metrics grew at all: the metrics it serves are not the ones the "
    "requests update (a forking server counts in child processes that exit; a registry "
    "of your own must be the one /metrics writes out)."
)


def _nothing_grew(before: dict[str, Family], after: dict[str, Family]) -> bool:
    for fam in after.values():
        if fam.name.startswith(("python_", "process_")):
            continue
        for suffix in ("_total", "_count", ""):
            if any(v for v in _delta(before.get(fam.name), fam, suffix).values()):
                return False
    return True


# ------------------------------------------------------------------ task 4: RED metrics


def _failure_counter(
    before: dict[str, Family], after: dict[str, Family], total: Family, errors: int
) -> Family | None:
    """A counter of its own that grew by exactly the failures, beside a total without a
    status label (the Prometheus docs' "a failures metric plus a total metric")."""
    for fam in after.values():
        if fam is total or fam.type != "counter" or not errors:
            continue
        if sum(_delta(before.get(fam.name), fam, "_total").values()) == errors:
            return fam
    return None


@check("red-metrics")
def red_metrics(ctx: CheckContext) -> Pass:
    traffic = _traffic(ctx)
    _unanswered(traffic)
    before, after = _metrics(traffic)
    n = len(traffic.sent)
    table = _families_table(before, after)
    leak = _ids_in_labels(after, traffic.sent)
    if leak:
        series = sum(
            len({labels for _, labels in f.samples}) for f in after.values() if f.name == leak[0]
        )
        raise Fail(
            f"{leak[0]} has a series labelled {leak[1]}: an order id in a label. Every "
            f"distinct label value is a new time series ({leak[0]} has {series} now, one "
            "per order ever seen), and a million orders would take the metrics server "
            "down. Label by the route template (/orders/{id}), and keep ids in logs and "
            "traces.",
            table,
        )
    counted: list[tuple[Family, dict[tuple[tuple[str, str], ...], float]]] = []
    for fam in after.values():
        suffix = {"counter": "_total", "histogram": "_count"}.get(fam.type)
        if suffix is None:
            continue
        grew = _delta(before.get(fam.name), fam, suffix)
        if n <= sum(grew.values()) <= n + 2:
            counted.append((fam, grew))
    if not counted:
        raise Fail(
            f"The checker sent {n} requests, but no counter (or histogram count) on "
            "/metrics grew by that much. Count every request you answer, labelled by route "
            "and status." + _NOTHING_GREW * _nothing_grew(before, after),
            table,
        )
    errors = sum(1 for s in traffic.sent if s.status >= 500)
    checkouts = sum(1 for s in traffic.sent if s.kind == "checkout")
    complaint = ""
    for fam, grew in counted:
        status_label = next(
            (
                label
                for label in {k for labels in grew for k, _ in labels}
                if all(STATUS_VALUE.match(dict(labels).get(label, "")) for labels in grew)
            ),
            None,
        )
        if status_label is None:
            failures = _failure_counter(before, after, fam, errors)
            if failures is None:
                complaint = complaint or (
                    f"{fam.name} counts all {n} requests, but no label says how they ended: "
                    f"{errors} of them were answered 5xx and nothing on /metrics shows it. "
                    "Add a status label (the code, 502, or its class, 5xx), or count the "
                    "failures in a counter of their own, so an error rate can be computed "
                    "and alerted on."
                )
                continue
            how = f"by route, and {failures.name} counted the {errors} failures"
        else:
            failed = sum(
                v for labels, v in grew.items() if dict(labels)[status_label].startswith("5")
            )
            if failed != errors:
                complaint = complaint or (
                    f"{fam.name} says {failed:g} requests failed with 5xx; the checker got "
                    f"{errors} 5xx answers. Count each request once, after you know its "
                    "status."
                )
                continue
            how = f"by route and status, with the {errors} failures under 5xx"
        routes = [
            label for label in {k for labels in grew for k, _ in labels} if label != status_label
        ]
        split = any(
            sum(v for labels, v in grew.items() if dict(labels).get(label) == value) == checkouts
            for label in routes
            for value in {dict(labels).get(label) for labels in grew}
        )
        if not split:
            complaint = complaint or (
                f"{fam.name} counts requests by status, but nothing tells POST /checkout "
                f"({checkouts} requests) from GET /orders/{{id}}. Label by route template "
                "too, so a slow or failing endpoint stands out."
            )
            continue
        return Pass(
            f"{fam.name} counted all {n} requests in {len(grew)} series, {how}; no ids in "
            "any label.",
            table,
        )
    raise Fail(complaint, table)


# ------------------------------------------------------------------ task 5: latency


def _quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus's histogram_quantile over cumulative (upper bound, count) buckets."""
    total = buckets[-1][1]
    if total <= 0:
        return math.nan
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower  # the highest finite bound, as Prometheus answers
            inside = count - below
            return lower + (upper - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = upper, count
    return lower


def _true_quantile(q: float, values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _mean(before: Family | None, fam: Family) -> float:
    count = sum(_delta(before, fam, "_count").values())
    return sum(_delta(before, fam, "_sum").values()) / count if count else math.inf


@check("latency-histogram")
def latency_histogram(ctx: CheckContext) -> Pass:
    traffic = _traffic(ctx)
    _unanswered(traffic)
    before, after = _metrics(traffic)
    n = len(traffic.sent)
    table = _families_table(before, after)
    timed = []
    for fam in after.values():
        if fam.type not in ("histogram", "summary"):
            continue
        grew = sum(_delta(before.get(fam.name), fam, "_count").values())
        if n <= grew <= n + 2:
            timed.append(fam)
    histograms = [f for f in timed if f.type == "histogram"]
    if not histograms:
        if timed:
            raise Fail(
                f"{timed[0].name} is a summary: its quantiles are worked out inside one "
                "process and cannot be added up. With ten instances you cannot get the "
                "service's p99 from ten p99s, nor ask how many requests took under 300 ms. "
                "A histogram's buckets are counters: they sum across instances, and "
                "histogram_quantile() estimates any percentile from them.",
                table,
            )
        raise Fail(
            f"The checker sent {n} requests, but no histogram on /metrics observed that "
            "many. Time every request (from when it arrives to when it is answered) in a "
            "histogram." + _NOTHING_GREW * _nothing_grew(before, after),
            table,
        )
    delays = [s.delay for s in traffic.sent]
    rtts = [s.rtt for s in traffic.sent]
    lo_mean, hi_mean = sum(delays) / n, sum(rtts) / n
    # The request histogram first: of several (one timing the inventory call, say), the
    # one whose mean is nearest what the checker measured.
    histograms.sort(key=lambda f: abs(_mean(before.get(f.name), f) - hi_mean))
    failures: list[str] = []  # why each histogram falls short, nearest first
    shown: dict[int, Evidence] = {}  # a failure's percentiles table, by its index
    for fam in histograms:
        count = sum(_delta(before.get(fam.name), fam, "_count").values())
        total = sum(_delta(before.get(fam.name), fam, "_sum").values())
        mean = total / count
        summed: dict[float, float] = {}
        for labels, grew in _delta(before.get(fam.name), fam, "_bucket").items():
            le = float(dict(labels)["le"])
            summed[le] = summed.get(le, 0.0) + grew
        buckets = sorted(summed.items())
        edges = ", ".join(f"{le:g}" for le, _ in buckets if not math.isinf(le))
        if mean > hi_mean * 20:
            failures.append(
                f"{fam.name} says the average request took {mean:g}, but the checker saw "
                f"{hi_mean:.3f} s. Prometheus measures time in seconds (and names it "
                "_seconds): observe seconds, not milliseconds."
            )
            continue
        if mean < lo_mean * 0.8:
            failures.append(
                f"{fam.name} says the average request took {mean * 1000:.0f} ms, but the "
                f"inventory alone kept each waiting {lo_mean * 1000:.0f} ms on average: the "
                "timer misses part of the request. Start it when the request arrives and "
                "observe it after the answer is ready."
            )
            continue
        within = dict(buckets)
        edge = next((le for le in within if abs(le - SLO_SECONDS) < 1e-9), None)
        if edge is None:
            failures.append(
                f"{fam.name} has buckets at {edges} s: none at 0.3 s, the SLO's limit. To "
                "know how many requests took under 300 ms you need an edge exactly there; "
                "interpolating inside a bucket that spans it is a guess. Pass buckets=(...) "
                "with 0.3 among them."
            )
            continue
        fast_lo = sum(1 for s in traffic.sent if s.rtt <= SLO_SECONDS)
        fast_hi = sum(1 for s in traffic.sent if s.delay <= SLO_SECONDS) + 2
        if not fast_lo <= within[edge] <= fast_hi:
            failures.append(
                f"{fam.name} says {within[edge]:g} requests finished within 0.3 s; the "
                f"checker counted {fast_lo} (the inventory alone kept {n - fast_hi + 2} "
                "of them waiting longer). Observe each request's own duration, once."
            )
            continue
        rows = []
        wrong = []
        for q in QUANTILES:
            lo, hi = _true_quantile(q, delays), _true_quantile(q, rtts)
            est = _quantile(q, buckets)
            ok = lo * (1 - TOLERANCE) <= est <= hi * (1 + TOLERANCE)
            rows.append(
                (
                    f"p{q * 100:g}",
                    f"{lo * 1000:.0f}-{hi * 1000:.0f} ms",
                    f"{est * 1000:.0f} ms",
                    "ok" if ok else "off",
                )
            )
            if not ok:
                wrong.append(
                    f"p{q * 100:g} {est * 1000:.0f} ms (true: {lo * 1000:.0f}-{hi * 1000:.0f} ms)"
                )
        quantiles = Evidence(
            f"percentiles: the traffic's and histogram_quantile over {fam.name}",
            "table",
            (("", "true", "estimated from your buckets", ""), rows),
        )
        if wrong:
            shown[len(failures)] = quantiles
            failures.append(
                f"{fam.name} has buckets at {edges} s. Estimated from them, "
                f"{'; '.join(wrong)}: an estimate can only be as fine as the bucket it "
                "falls in. Put more edges where the traffic is (tens of ms to about 1 s), "
                "and keep 0.3."
            )
            continue
        return Pass(
            f"{fam.name} observed all {n} requests; its 0.3 s bucket holds "
            f"{within[edge]:g} of them, and p50, p95 and p99 estimated from its buckets "
            "match the traffic.",
            quantiles,
        )
    raise Fail(failures[0], *([shown[0]] if 0 in shown else []), table)


# ------------------------------------------------------------------ task 6: the alert

BUDGET = 0.001
FIRST_PAGE_WITHIN = 20  # minutes into the incident
STOP_WITHIN = 35  # minutes after it ends
REPLAY_SECONDS = 8  # the whole replay takes a fraction of a second


@dataclass
class Recording:
    minutes: list[dict[str, Any]]
    events: dict[str, tuple[int, int]]  # name -> (first minute, minute after the last)


def _poisson(rng: random.Random, lam: float) -> int:
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _recording() -> Recording:
    """A recorded half day, a minute a sample: a CPU blip, a spike, then a real incident."""
    rng = random.Random()
    blip_len = rng.randint(15, 25)
    first = rng.randint(120, 200)
    second = rng.randint(first + 90, 400)
    blip, spike = (first, second) if rng.random() < 0.5 else (second, first)
    incident = rng.randint(480, 540)
    incident_len = rng.randint(40, 50)
    rate = rng.uniform(0.07, 0.09)
    end = incident + incident_len + 60
    events = {
        "CPU blip": (blip, blip + blip_len),
        "error spike": (spike, spike + 1),
        "incident": (incident, incident + incident_len),
    }
    minutes = []
    for t in range(end):
        requests = max(200, round(900 + 300 * math.sin(2 * math.pi * t / 720) + rng.gauss(0, 30)))
        errors = _poisson(rng, requests * 0.0003)
        cpu = min(0.8, max(0.1, 0.3 + 0.2 * requests / 1200 + rng.gauss(0, 0.03)))
        # Latency stays within the 300 ms SLO all along, so only the error budget can
        # tell the events apart: the busy CPU slows nothing much, and the incident's
        # failures are fast 503s.
        p99 = min(rng.gauss(230, 15), 270.0)
        if blip <= t < blip + blip_len:
            cpu, p99 = rng.uniform(0.95, 0.99), p99 + 15
        if t == spike:
            errors = round(requests * rng.uniform(0.15, 0.25))
        if incident <= t < incident + incident_len:
            errors = _poisson(rng, requests * rng.uniform(rate - 0.01, rate + 0.01))
        minutes.append(
            {
                "minute": t,
                "requests": requests,
                "errors": errors,
                "cpu": round(cpu, 3),
                "p99_ms": round(p99),
            }
        )
    return Recording(minutes, events)


def _replay(ctx: CheckContext) -> tuple[Recording, list[bool]]:
    """The recording replayed through should_page once per `lab check`."""
    return ctx.once("replay", lambda: _play(ctx))


def _play(ctx: CheckContext) -> tuple[Recording, list[bool]]:
    recording = _recording()
    run = ctx.run(
        HARNESS_FILE,
        "replay",
        "alerts.py",
        recording.minutes,
        files=FILES,
        timeout=REPLAY_SECONDS,
    )
    if run.timed_out or run.limit:
        raise Fail(
            f"Replaying {len(recording.minutes)} minutes through should_page did not "
            f"finish ({run.limit or 'it ran out of time'}): each call should take "
            "well under a millisecond.",
            Evidence("its output", "text", _clip_lines(run.output)),
        )
    if not run.ok:
        raise Fail(
            f"should_page(history) could not be replayed: {run.error}. It is called "
            "from the first minute on, when history holds one sample, and the history "
            "grows to the last 360 minutes: a window longer than the history uses what "
            "there is.",
            Evidence("traceback", "text", run.traceback or _clip_lines(run.output)),
        )
    if not isinstance(run.value, list) or len(run.value) != len(recording.minutes):
        raise Fail("should_page could not be replayed: the harness got no answers.")
    return recording, [bool(v) for v in run.value]


def _minute_text(sample: dict[str, Any]) -> str:
    share = sample["errors"] / max(sample["requests"], 1)
    return (
        f"{sample['requests']} requests, errors {sample['errors']} ({share:.2%}), "
        f"CPU {sample['cpu']:.0%}, p99 {sample['p99_ms']} ms"
    )


def _timeline(recording: Recording, pages: list[bool]) -> Evidence:
    rows = []
    for name, (start, stop) in sorted(recording.events.items(), key=lambda e: e[1][0]):
        window = recording.minutes[start:stop]
        worst = max(window, key=lambda m: (m["errors"] / m["requests"], m["cpu"]))
        paged = [t for t in range(start, min(stop + 10, len(pages))) if pages[t]]
        rows.append(
            (
                name,
                f"minutes {start}-{stop - 1}" if stop - start > 1 else f"minute {start}",
                _minute_text(worst),
                f"{len(paged)} (first at {paged[0]})" if paged else "0",
            )
        )
    total = sum(pages)
    rows.append(("whole recording", f"{len(pages)} minutes", "", str(total)))
    return Evidence(
        "the recording and your pages",
        "table",
        (("event", "when", "its worst minute", "minutes paged"), rows),
    )


def _minutes(n: int) -> str:
    return "less than a minute" if n == 0 else "1 minute" if n == 1 else f"{n} minutes"


@check("alert-pages-incident")
def alert_pages_incident(ctx: CheckContext) -> Pass:
    recording, pages = _replay(ctx)
    start, stop = recording.events["incident"]
    evidence = _timeline(recording, pages)
    sample = recording.minutes[start + 5]
    during = [t for t in range(start, stop) if pages[t]]
    if not during:
        after = next((t for t in range(stop, len(pages)) if pages[t]), None)
        raise Fail(
            f"From minute {start} to {stop - 1} the service failed a steady share of its "
            f"requests (minute {start + 5}: {_minute_text(sample)}): it burnt "
            f"{(stop - start) * sample['errors'] / sample['requests'] / BUDGET / 43200:.0%} "
            "of a 30-day error budget in under an hour, and nobody was paged"
            + (f" until minute {after}, after it had ended" if after is not None else "")
            + ". Compare the error rate with the budget (0.1%) over a window long enough "
            "to be sure (an hour) and page when it burns many times too fast (14.4).",
            evidence,
        )
    if during[0] - start >= FIRST_PAGE_WITHIN:
        raise Fail(
            f"The incident started at minute {start}; the first page came at minute "
            f"{during[0]}, {during[0] - start} minutes in. Users were failing all that "
            f"time: page within {FIRST_PAGE_WITHIN} minutes. A fast burn like this one is "
            "what the Workbook's first tier is for: 14.4 over the last hour (and 5 "
            "minutes) fires in about 10 minutes here. Its second tier, 6 over six hours, "
            "catches slower burns; on its own it is too slow for this one.",
            evidence,
        )
    late = [t for t in range(stop + STOP_WITHIN, len(pages)) if pages[t]]
    if late:
        raise Fail(
            f"The incident ended at minute {stop}, but you still paged at minute "
            f"{late[0]}, {late[0] - stop} minutes later, when errors were back to normal "
            f"({_minute_text(recording.minutes[late[0]])}). A long window remembers the "
            "incident for an hour: also require a short window (about 1/12 of the long "
            "one) to burn too, so the page stops soon after the problem does.",
            evidence,
        )
    return Pass(
        f"Paged {_minutes(during[0] - start)} after the incident began (minute {start}) and "
        f"stopped within {STOP_WITHIN} minutes of its end.",
        evidence,
    )


@check("alert-quiet-otherwise")
def alert_quiet_otherwise(ctx: CheckContext) -> Pass:
    recording, pages = _replay(ctx)
    start = recording.events["incident"][0]
    evidence = _timeline(recording, pages)
    noise = [t for t in range(start) if pages[t]]
    if noise:
        t = noise[0]
        sample = recording.minutes[t]
        blip = recording.events["CPU blip"]
        spike = recording.events["error spike"][0]
        if blip[0] <= t < blip[1] + 5:
            why = (
                "during the CPU blip: a busy CPU with requests answered well and fast is a "
                "machine doing its job. CPU is a cause; page on symptoms users feel (errors, "
                "latency against the SLO) and keep CPU on a dashboard."
            )
        elif spike <= t < spike + 15:
            why = (
                f"after the one-minute error spike at minute {spike}"
                + (f" ({_minute_text(recording.minutes[spike])})" if t != spike else "")
                + ". It spent a fraction of a "
                "percent of the month's budget and was over a minute later: judge the error "
                "rate over a long window (an hour) against the budget, not minute by minute."
            )
        else:
            why = (
                "when nothing was wrong: the errors were within budget (0.1%). Page on the "
                "burn rate, errors divided by requests divided by the budget, over a window."
            )
        raise Fail(
            f"Paged {len(noise)} times before the real incident; first at minute {t} "
            f"({_minute_text(sample)}), {why}",
            evidence,
        )
    return Pass(
        "No page for the CPU blip, the one-minute error spike or the quiet hours.",
        evidence,
    )
