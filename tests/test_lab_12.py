"""Lab 12 (observability): answers the proof's cases do not hold, judged right.

Other correct answers must pass: logs written through the logging module to stderr by a
JSON formatter, a traceparent parsed with split() instead of a regular expression, RED
metrics kept in one histogram labelled by route and status class (no separate counter)
with other buckets; ECS-style logs with the status nested, a failures counter beside
the total, and a histogram of the inventory call registered before the request one;
lines written without a flush, with the default buckets plus 0.3; and alerts with both
of the Workbook's paging tiers, with hysteresis over mean per-minute ratios, or with
windows chosen by the minute field. Other wrong ones must fail and say why: a Summary,
a histogram fed milliseconds, a timer that stops before the inventory call, one trace id
for every new trace, the caller's span sent on as the parent, an all-zero trace id
passed along, an uppercase trace id, no status label, the query string logged, a token
masked at its front only, no logs at all, lines glued together by threads, a megabyte
of debug logs, a forking server whose counters never reach /metrics, a service that
cannot start or never answers checkout, an alert on a long window alone, one on six
hours alone (too slow for a fast burn), one that always pages, one on a raw error
count, one on latency alone, one that indexes an hour back from the first minute, and
one that never returns. The lab needs no server; the proof runs in test_lab_proofs.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path

import pytest

from sdtutor.content.loader import load_lab
from sdtutor.content.models import LabSpec
from sdtutor.lab.checks import run_checks
from sdtutor.lab.results import CheckResult
from tests.conftest import REPO

LAB_DIR = REPO / "labs" / "12-observability"
SOLUTION = {p.name: p.read_text() for p in (LAB_DIR / "solution").glob("*.py")}
SERVICE_CHECKS = (
    "logs-structured",
    "trace-propagated",
    "secrets-redacted",
    "red-metrics",
    "latency-histogram",
)
ALERT_CHECKS = ("alert-pages-incident", "alert-quiet-otherwise")


@pytest.fixture(scope="module")
def lab() -> LabSpec:
    return load_lab(LAB_DIR)


def judge(lab: LabSpec, files: dict[str, str], *check_ids: str) -> dict[str, CheckResult]:
    """Some checks over a workspace that is the solution with `files` laid over it.

    The service checks share one start of the service and one batch of traffic, as in a
    real `lab check`, so several of them cost one run.
    """
    only = dataclasses.replace(lab, checks=tuple(c for c in lab.checks if c.id in check_ids))
    with tempfile.TemporaryDirectory(prefix="sdtutor-lab12-") as tmp:
        workspace = Path(tmp)
        shutil.copyfile(LAB_DIR / "README.md", workspace / "README.md")
        shutil.copyfile(LAB_DIR / "starter" / "inventory.py", workspace / "inventory.py")
        for name, text in {**SOLUTION, **files}.items():
            (workspace / name).write_text(text)
        results = run_checks(only, workspace, {}, deadline=60)
    return {r.id: r for r in results}


def variant(file: str, *edits: tuple[str, str]) -> str:
    """A solution file with each (old, new) edit made; every `old` must be there."""
    text = SOLUTION[file]
    for old, new in edits:
        assert old in text, f"the solution's {file} no longer has {old!r}"
        text = text.replace(old, new)
    return text


# ------------------------------------------------------------------ correct other ways

LOGGING_MODULE = (
    '''def log(level: str, message: str, **fields: Any) -> None:
    """One JSON object per line on stdout: easy to search, easy to join on trace_id."""
    line = {
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "level": level,
        "service": SERVICE,
        "message": message,
        **fields,
    }
    sys.stdout.write(json.dumps(line) + "\\n")
    sys.stdout.flush()
''',
    """import logging


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "time": self.formatTime(record),
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": record.getMessage(),
                **getattr(record, "fields", {}),
            }
        )


_handler = logging.StreamHandler(sys.stderr)
_handler.setFormatter(JsonFormatter())
LOGGER = logging.getLogger("orders")
LOGGER.addHandler(_handler)
LOGGER.setLevel(logging.INFO)
LOGGER.propagate = False


def log(level: str, message: str, **fields: Any) -> None:
    LOGGER.log(logging.getLevelName(level.upper().replace("WARN", "WARNING")), message,
               extra={"fields": fields})
""",
)

SPLIT_PARSER = (
    """    match = TRACEPARENT.match((header or "").strip())
    if match:
        version, trace_id, parent, _flags = match.groups()
        if version != "ff" and trace_id != "0" * 32 and parent != "0" * 16:
            return trace_id, parent
    return secrets.token_hex(16), None""",
    """    parts = (header or "").strip().split("-")
    hexdigits = set("0123456789abcdef")
    if (
        len(parts) == 4
        and [len(p) for p in parts] == [2, 32, 16, 2]
        and all(set(p) <= hexdigits for p in parts)
        and parts[0] == "00"
        and int(parts[1], 16) != 0
        and int(parts[2], 16) != 0
    ):
        return parts[1], parts[2]
    return os.urandom(16).hex(), None""",
)

ONE_HISTOGRAM = [
    (
        """REQUESTS = Counter(
    "http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
""",
        "",
    ),
    (
        """    ["method", "route"],
    # Fine where the traffic is, and one edge exactly at the SLO's 300 ms.
    buckets=(0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0),""",
        """    ["route", "code"],
    buckets=(0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2),""",
    ),
    (
        """                REQUESTS.labels(self.command, route, str(status)).inc()
                DURATION.labels(self.command, route).observe(elapsed)""",
        """                DURATION.labels(f"{self.command} {route}", f"{status // 100}xx").observe(
                    elapsed
                )""",
    ),
    ("Counter, Histogram", "Histogram"),
]

TWO_TIERS = """
BUDGET = 0.001


def burn(history, minutes):
    window = history[-minutes:]
    total = sum(m["requests"] for m in window)
    return sum(m["errors"] for m in window) / total / BUDGET if total else 0.0


def should_page(history):
    fast = burn(history, 60) >= 14.4 and burn(history, 5) >= 14.4
    slow = burn(history, 360) >= 6 and burn(history, 30) >= 6
    return fast or slow
"""


def test_other_correct_service_passes(lab: LabSpec) -> None:
    app = variant(
        "app.py",
        LOGGING_MODULE,
        SPLIT_PARSER,
        *ONE_HISTOGRAM,
    )
    results = judge(lab, {"app.py": app}, *SERVICE_CHECKS)
    failed = {i: r.message for i, r in results.items() if not r.passed}
    assert not failed, failed


def test_two_tier_alert_passes(lab: LabSpec) -> None:
    results = judge(lab, {"alerts.py": TWO_TIERS}, *ALERT_CHECKS)
    failed = {i: r.message for i, r in results.items() if not r.passed}
    assert not failed, failed


# ECS-style fields (status nested under http.response), logged through the logging
# module to stdout; a failures counter beside a total without a status label (the
# Prometheus docs' "a failures metric plus a total metric"); a histogram of the
# inventory call, with coarse buckets, registered before the request histogram; trace
# ids from uuid4 and span ids from getrandbits.
ECS_FAILURES_COUNTER = [
    (
        """    line = {
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "level": level,
        "service": SERVICE,
        "message": message,
        **fields,
    }
    sys.stdout.write(json.dumps(line) + "\\n")
    sys.stdout.flush()
""",
        """    status = fields.pop("status", None)
    line = {
        "@timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "level": level,
        "service": {"name": SERVICE},
        "message": message,
        "trace_id": fields.pop("trace_id", None),
        "http": {"response": {"status_code": status}} if status is not None else {},
        "labels": fields,
    }
    LOGGER.info(json.dumps(line))
""",
    ),
    (
        'SERVICE = "orders"\n',
        """SERVICE = "orders"
LOGGER = logging.getLogger("orders")
LOGGER.addHandler(logging.StreamHandler(sys.stdout))
LOGGER.setLevel(logging.INFO)
LOGGER.propagate = False
""",
    ),
    ("import json\n", "import json\nimport logging\nimport uuid\n"),
    (
        """REQUESTS = Counter(
    "http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)""",
        """INVENTORY_TIME = Histogram(
    "inventory_call_seconds", "Time spent calling the inventory", buckets=(0.1, 0.3, 1.0)
)
REQUESTS = Counter("http_requests_total", "HTTP requests answered", ["method", "route"])
FAILURES = Counter("http_request_failures_total", "Requests answered 5xx", ["route"])""",
    ),
    (
        "                REQUESTS.labels(self.command, route, str(status)).inc()",
        """                REQUESTS.labels(self.command, route).inc()
                if status >= 500:
                    FAILURES.labels(route).inc()""",
    ),
    (
        "            with urllib.request.urlopen(request, timeout=3) as response:",
        "            with INVENTORY_TIME.time(), urllib.request.urlopen(\n"
        "                request, timeout=3\n"
        "            ) as response:",
    ),
    ("    return secrets.token_hex(16), None", "    return uuid.uuid4().hex, None"),
    (
        "        self.span_id = secrets.token_hex(8)",
        '        self.span_id = f"{secrets.SystemRandom().getrandbits(64):016x}"',
    ),
]

# One write per line and no flush: the checker reads the service's output line by line,
# as PYTHONUNBUFFERED=1 would in a container. prometheus_client's default buckets with
# 0.3 added.
UNFLUSHED_DEFAULT_BUCKETS = [
    (
        '    sys.stdout.write(json.dumps(line) + "\\n")\n    sys.stdout.flush()\n',
        '    sys.stdout.write(json.dumps(line) + "\\n")\n',
    ),
    (
        "buckets=(0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0)",
        "buckets=sorted({*Histogram.DEFAULT_BUCKETS, 0.3})",
    ),
]


@pytest.mark.parametrize(
    "edits",
    [ECS_FAILURES_COUNTER, UNFLUSHED_DEFAULT_BUCKETS],
    ids=["ecs-failures-counter-two-histograms", "unflushed-default-buckets"],
)
def test_more_correct_services_pass(edits: list[tuple[str, str]], lab: LabSpec) -> None:
    results = judge(lab, {"app.py": variant("app.py", *edits)}, *SERVICE_CHECKS)
    failed = {i: r.message for i, r in results.items() if not r.passed}
    assert not failed, failed
    if edits is ECS_FAILURES_COUNTER:  # judged on the request histogram, not the other
        assert "http_request_duration_seconds" in results["latency-histogram"].message


HYSTERESIS = """
BUDGET = 0.001
paging = False


def should_page(history):
    # The mean of per-minute error ratios; once paging, page until 5 minutes burn under 2.
    global paging

    def burn(n):
        window = history[-n:]
        return sum(m["errors"] / max(m["requests"], 1) for m in window) / len(window) / BUDGET

    paging = burn(5) > 2 if paging else burn(60) > 14.4 and burn(5) > 14.4
    return paging
"""

BY_MINUTE_FIELD = """
def should_page(history):
    now = history[-1]["minute"]

    def burn(span):
        window = [m for m in history if m["minute"] > now - span]
        requests = sum(m["requests"] for m in window) or 1
        return sum(m["errors"] for m in window) / requests / 0.001

    return min(burn(60), burn(5)) >= 14.4 or min(burn(360), burn(30)) >= 6
"""


@pytest.mark.parametrize("text", [HYSTERESIS, BY_MINUTE_FIELD], ids=["hysteresis", "by-minute"])
def test_more_correct_alerts_pass(text: str, lab: LabSpec) -> None:
    results = judge(lab, {"alerts.py": text}, *ALERT_CHECKS)
    failed = {i: r.message for i, r in results.items() if not r.passed}
    assert not failed, failed


# ------------------------------------------------------------------ wrong other ways

WRONG_SERVICES: dict[str, tuple[list[tuple[str, str]], dict[str, str]]] = {
    # a Summary; one trace id for every new trace; no status label
    "summary-constant-trace-no-status": (
        [
            (
                """DURATION = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    # Fine where the traffic is, and one edge exactly at the SLO's 300 ms.
    buckets=(0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0),
)""",
                """from prometheus_client import Summary

DURATION = Summary(
    "http_request_duration_seconds", "Time to answer an HTTP request", ["method", "route"]
)""",
            ),
            (
                "    return secrets.token_hex(16), None",
                '    return "4bf92f3577b34da6a3ce929d0e0e4736", None',
            ),
            ('["method", "route", "status"]', '["method", "route"]'),
            (
                "REQUESTS.labels(self.command, route, str(status))",
                "REQUESTS.labels(self.command, route)",
            ),
        ],
        {
            "latency-histogram": "is a summary",
            "trace-propagated": "different trace ids",
            "red-metrics": "no label says how they ended",
        },
    ),
    # milliseconds; the caller's span sent on as the parent; the query string logged
    "ms-same-span-query-logged": (
        [
            (".observe(elapsed)", ".observe(elapsed * 1000)"),
            (
                "        self.span_id = secrets.token_hex(8)\n",
                "        self.span_id = self.parent_id or secrets.token_hex(8)\n",
            ),
            ("                path=path,\n", "                path=self.path,\n"),
        ],
        {
            "latency-histogram": "not milliseconds",
            "trace-propagated": "names the caller's span",
            "secrets-redacted": "query token",
        },
    ),
    # the timer stops before the inventory call; an all-zero trace id passed on; no logs
    "early-timer-zero-trace-silent": (
        [
            ("            elapsed = time.perf_counter() - started\n", ""),
            (
                "        started = time.perf_counter()\n",
                "        started = time.perf_counter()\n        elapsed = 0.0005\n",
            ),
            ('if version != "ff" and trace_id != "0" * 32 and parent != "0" * 16:', "if True:"),
            ('    sys.stdout.write(json.dumps(line) + "\\n")\n', ""),
        ],
        {
            "latency-histogram": "the timer misses part of the request",
            "trace-propagated": "all-zero ids",
            "logs-structured": "printed nothing",
        },
    ),
}


WRONG_SERVICES.update(
    {
        # a token masked at its front only; the trace id sent on in uppercase; a forking
        # server, whose children count the requests and exit
        "masked-front-uppercase-forking": (
            [
                (
                    "                duration_ms=round(elapsed * 1000, 1),\n",
                    "                duration_ms=round(elapsed * 1000, 1),\n"
                    '                auth=("****" + self.headers.get("Authorization", "")[11:]),\n',
                ),
                (
                    'f"00-{self.trace_id}-{self.span_id}-01"',
                    'f"00-{self.trace_id.upper()}-{self.span_id}-01"',
                ),
                (
                    "class Server(ThreadingHTTPServer):\n    daemon_threads = True\n",
                    "import socketserver\n\n\n"
                    "class Server(socketserver.ForkingMixIn, ThreadingHTTPServer):\n",
                ),
            ],
            {
                "secrets-redacted": "masked in part",
                "trace-propagated": "lowercase",
                "red-metrics": "Nothing on /metrics grew at all",
            },
        ),
        # print()'s race between the text and the newline, made certain by a pause
        "lines-glued": (
            [
                (
                    '    sys.stdout.write(json.dumps(line) + "\\n")\n',
                    "    sys.stdout.write(json.dumps(line))\n"
                    "    time.sleep(0.01)\n"
                    '    sys.stdout.write("\\n")\n',
                )
            ],
            {"logs-structured": "run together"},
        ),
        # 12 kB of debug per request: the early requests' lines are lost
        "debug-flood": (
            [
                (
                    '            log(\n                "error" if status >= 500',
                    "            for _ in range(12):\n"
                    '                log("debug", "state", trace_id=self.trace_id,'
                    ' dump="x" * 1000)\n'
                    '            log(\n                "error" if status >= 500',
                )
            ],
            {"logs-structured": "the checker keeps"},
        ),
        # checkout waits for ever on a payment provider: the checker stops sending
        "checkout-hangs": (
            [
                (
                    "            body = self._json_body()\n",
                    "            body = self._json_body()\n            time.sleep(3600)\n",
                )
            ],
            {"secrets-redacted": "got no answer"},
        ),
    }
)


@pytest.mark.parametrize("name", sorted(WRONG_SERVICES))
def test_other_wrong_services_fail_and_say_why(name: str, lab: LabSpec) -> None:
    edits, expected = WRONG_SERVICES[name]
    results = judge(lab, {"app.py": variant("app.py", *edits)}, *expected)
    for check_id, phrase in expected.items():
        result = results[check_id]
        assert not result.passed, (check_id, result.message)
        assert phrase in result.message, (check_id, result.message)


def test_a_service_that_cannot_start_fails_and_says_so(lab: LabSpec) -> None:
    app = variant(
        "app.py", ('if __name__ == "__main__":', 'raise RuntimeError("no config")\nif True:')
    )
    result = judge(lab, {"app.py": app}, "red-metrics")["red-metrics"]
    assert not result.passed
    assert "could not be started" in result.message and "no config" in result.message


WRONG_ALERTS = {
    "long-window-only": (
        variant("alerts.py", ("and burn_rate(history, SHORT) > BURN", "")),
        "alert-pages-incident",
        "still paged",
    ),
    "never-returns": (
        variant(
            "alerts.py",
            ("from typing import Any", "import time\nfrom typing import Any"),
            (
                "    # CPU is a cause",
                "    time.sleep(60)  # waits on something that never comes\n    # CPU is a cause",
            ),
        ),
        "alert-pages-incident",
        "did not finish",
    ),
    "six-hours-only": (  # a page 28 or more minutes in, or (rarely) only after the end
        variant("alerts.py", ("LONG, SHORT, BURN = 60, 5, 14.4", "LONG, SHORT, BURN = 360, 30, 6")),
        "alert-pages-incident",
        "minutes in|after it had ended",
    ),
    "raw-error-count": (
        'def should_page(history):\n    return sum(m["errors"] for m in history[-5:]) > 50\n',
        "alert-quiet-otherwise",
        "after the one-minute error spike",
    ),
    "latency-only": (
        'def should_page(history):\n    return history[-1]["p99_ms"] > 300\n',
        "alert-pages-incident",
        "nobody was paged",
    ),
    "an-hour-back-from-minute-one": (
        "def should_page(history):\n"
        '    return history[-1]["errors"] - history[-60]["errors"] > 100\n',
        "alert-pages-incident",
        "from the first minute on",
    ),
    "always-pages": (
        "def should_page(history):\n    return True\n",
        "alert-quiet-otherwise",
        "when nothing was wrong",
    ),
}


@pytest.mark.parametrize("name", sorted(WRONG_ALERTS))
def test_other_wrong_alerts_fail_and_say_why(name: str, lab: LabSpec) -> None:
    text, check_id, phrase = WRONG_ALERTS[name]
    result = judge(lab, {"alerts.py": text}, check_id)[check_id]
    assert not result.passed
    assert any(p in result.message for p in phrase.split("|")), result.message
