"""Plays the function platform inside the learner's process; and calls their cost model.

The check runs these through the runner, which puts this file beside the learner's files
in the sandbox. Nothing here decides a verdict: `bills` returns the raw numbers the cost
model gave, and the platform returns what each invocation did (returned, raised, or was
killed at its deadline) with the times it started and ended. The checker judges them
against its own arithmetic and against what PostgreSQL and its image service saw.

The platform: one process is one instance (execution environment). It is forked from
here, imports the learner's module (the cold start: its init code runs there), says it
is ready, then runs `handler(event, context)` for each invocation it is sent (warm
starts). Between invocations the instance is frozen (SIGSTOP to its process group), as
on Lambda: threads the handler left running do not run on. An invocation still running
`grace` seconds after its deadline is killed with its whole instance, as a function
platform does; the next one gets a new instance. The
grace is the platform's allowance for a busy machine: the checker judges an invocation
that answered after its deadline by what it had started with how much time left.

The variables the learner's code reads (IMAGE_SERVICE_URL) come from the check's `env`.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import json
import os
import select
import signal
import sys
import time
import traceback
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from sdtutor.lab.runner.harness import import_learner
from sdtutor.lab.runner.values import normalise

READY_WAIT = 5.0
"""Seconds an instance may take to start (its init code), before it counts as failed."""


class _Ended(Exception):
    """The instance's process ended (it exited, crashed, or closed its pipe)."""


# ------------------------------------------------------------------ the cost model


def _number(value: Any) -> Any:
    """A returned number as JSON can carry it; anything else as its repr, to show."""
    if isinstance(value, bool | str | bytes) or value is None:
        return {"other": repr(value)[:80]}
    try:
        number = float(value)  # Decimal, numpy numbers, Fraction, and ints past a float
    except (TypeError, ValueError, OverflowError):
        return {"other": repr(value)[:80]}
    if number != number or abs(number) == float("inf"):
        return {"other": repr(value)[:80]}
    return value if isinstance(value, int) else number


def bills(file: str, scenarios: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each scenario's three answers from the learner's cost model, raw."""
    module = import_learner(Path(__file__).with_name(file))
    out = []
    for s in scenarios:
        row: dict[str, Any] = {}
        calls = {
            "functions": (
                "monthly_cost_functions",
                [s["requests"], s["duration_ms"], s["memory_mb"]],
            ),
            "server": ("monthly_cost_server", [s["requests"]]),
            "break_even": ("break_even_requests", [s["duration_ms"], s["memory_mb"]]),
        }
        for key, (name, args) in calls.items():
            if key not in s["want"]:
                continue
            function = getattr(module, name, None)
            if not callable(function):
                row[key] = {"error": f"{file} has no function {name}"}
                continue
            try:
                row[key] = _number(function(*args, copy.deepcopy(s["prices"])))
            except Exception as exc:
                row[key] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
        out.append(row)
    return out


# ------------------------------------------------------------------ the platform


class Context:
    """What the handler gets as `context`, shaped like AWS Lambda's."""

    def __init__(self, request: dict[str, Any], function_name: str) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = request.get("memory_mb", 512)
        self.aws_request_id = request["id"]
        self.invoked_function_arn = f"arn:aws:lambda:local:000000000000:function:{function_name}"
        self._deadline = request["deadline"]
        self._looks = 0  # how often the handler asked (the checker's messages say so)

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the platform ends this invocation."""
        self._looks += 1
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _send(fd: int, message: dict[str, Any]) -> None:
    data = (json.dumps(message, default=repr) + "\n").encode()
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _failure(exc: BaseException) -> dict[str, Any]:
    try:
        error = f"{type(exc).__name__}: {exc}"
    except BaseException:
        error = type(exc).__name__
    return {"ok": False, "error": error[:500], "traceback": traceback.format_exc(limit=-6)[-3000:]}


def _instance(path: Path, inbox: int, outbox: int) -> None:
    """The instance's life: init once, then one handler call per request."""
    try:
        module = import_learner(path)
        handler = getattr(module, "handler", None)
        if not callable(handler):
            raise AttributeError(f"{path.name} has no function called handler")
    except BaseException as exc:
        _send(outbox, {"ready": False, **_failure(exc)})
        return
    _send(outbox, {"ready": True})
    pending = b""
    while True:
        while b"\n" not in pending:
            chunk = os.read(inbox, 65536)
            if not chunk:
                return
            pending += chunk
        line, pending = pending.split(b"\n", 1)
        request = json.loads(line)
        context = Context(request, path.stem)
        try:
            value = handler(copy.deepcopy(request["event"]), context)
            answered = time.monotonic()
            reply: dict[str, Any] = {"ok": True, "value": normalise(value)}
        except BaseException as exc:
            answered = time.monotonic()
            reply = _failure(exc)
        _flush()
        reply["at"] = answered  # when it answered, before the platform reads it
        reply["looked"] = context._looks
        _send(outbox, reply)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()


class _Running:
    """The platform's handle on one instance."""

    def __init__(self, number: int, pid: int, inbox: int, outbox: int) -> None:
        self.number = number
        self.pid = pid
        self.inbox = inbox  # we write requests here
        self.outbox = outbox  # and read replies here
        self.pending = b""
        self.invocations = 0

    def read(self, until: float) -> dict[str, Any] | None:
        """One reply, or None when `until` (monotonic) passes first; _Ended if the
        instance's process ended before it answered."""
        while b"\n" not in self.pending:
            left = until - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.outbox], [], [], left)
            if not ready:
                return None
            try:
                chunk = os.read(self.outbox, 65536)
            except OSError as exc:
                raise _Ended from exc
            if not chunk:
                raise _Ended
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        reply: dict[str, Any] = json.loads(line)
        return reply

    def signal(self, number: int) -> None:
        """To the instance and whatever it started (its process group)."""
        with contextlib.suppress(OSError):
            os.killpg(self.pid, number)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.waitpid(self.pid, 0)
        for fd in (self.inbox, self.outbox):
            with contextlib.suppress(OSError):
                os.close(fd)


class Platform:
    """Starts instances of one function and invokes them."""

    def __init__(self, file: str) -> None:
        self.path = Path(__file__).with_name(file)
        self.instances: list[dict[str, Any]] = []  # what each instance's start gave
        self.live: dict[int, _Running] = {}
        # Imported here once, so that each forked instance starts like a warm runtime
        # would: its cold start runs the learner's init code, not the library's.
        with contextlib.suppress(Exception):
            importlib.import_module("psycopg")

    def start(self) -> _Running | None:
        """A new instance (a cold start); None, with the reason recorded, if it failed."""
        number = len(self.instances)
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        _flush()
        began = time.monotonic()
        pid = os.fork()
        if pid == 0:
            try:
                os.setpgid(0, 0)  # a group of its own, frozen and thawed as one
                # The instance keeps its own two pipes and stdio, nothing else: not the
                # other instances' pipes, nor the runner's result channel.
                low, high = sorted((to_child_r, from_child_w))
                os.closerange(3, low)
                os.closerange(low + 1, high)
                os.closerange(high + 1, max(high + 1, os.sysconf("SC_OPEN_MAX")))
                _instance(self.path, to_child_r, from_child_w)
                _flush()
            finally:
                os._exit(0)
        with contextlib.suppress(OSError):
            os.setpgid(pid, pid)  # also from here, whichever of the two runs first
        os.close(to_child_r)
        os.close(from_child_w)
        running = _Running(number, pid, to_child_w, from_child_r)
        try:
            reply = running.read(time.monotonic() + READY_WAIT)
        except _Ended:
            reply = {"ready": False, "error": "the instance's process ended during its init"}
        record: dict[str, Any] = {
            "instance": number,
            "ready": bool(reply and reply.get("ready")),
            "began": began,  # its init ran from here...
            "ready_at": time.monotonic(),  # ...to here
        }
        if reply is None:
            record["error"] = f"the instance did not start within {READY_WAIT:g} s"
        elif not reply.get("ready"):
            record.update(error=reply.get("error"), traceback=reply.get("traceback"))
        self.instances.append(record)
        if not record["ready"]:
            running.kill()
            return None
        self.live[number] = running
        return running

    def invoke(self, running: _Running, event: Any, timeout: float, grace: float) -> dict[str, Any]:
        """One invocation: what it returned or raised, or that it was killed (still running
        `grace` seconds after its deadline) or crashed (its process ended)."""
        started = time.monotonic()
        deadline = started + timeout
        request = {"id": str(uuid.uuid4()), "event": event, "deadline": deadline}
        running.invocations += 1
        result: dict[str, Any] = {
            "instance": running.number,
            "started": started,
            "deadline": deadline,
        }
        try:
            running.signal(signal.SIGCONT)  # thawed for the invocation...
            _send(running.inbox, request)
            reply = running.read(deadline + grace)
        except (OSError, _Ended):
            reply = {"crashed": True}
        now = time.monotonic()
        # ...and frozen between invocations, as a function platform does: work the handler
        # left running after its answer waits for the next invocation (which may not come).
        running.signal(signal.SIGSTOP)
        if reply is None:
            reply = {"killed": True}
        answered = reply.pop("at", None)
        # When it answered, as the instance stamped it (the platform may read it later
        # on a busy machine); never outside the time the platform waited.
        fair = isinstance(answered, float) and started <= answered <= now
        result["ended"] = answered if fair else now
        result.update(reply)
        if reply.get("killed") or reply.get("crashed"):
            self.stop(running)
        return result

    def stop(self, running: _Running) -> None:
        """The instance is reclaimed, without notice."""
        running.kill()
        self.live.pop(running.number, None)

    def stop_all(self) -> None:
        for running in list(self.live.values()):
            self.stop(running)

    def report(self, invocations: list[dict[str, Any]]) -> dict[str, Any]:
        return {"instances": self.instances, "invocations": invocations}


def warm(file: str, events: list[Any], instances: int, timeout: float) -> dict[str, Any]:
    """`instances` environments started together, then the events sent to them in turn."""
    platform = Platform(file)
    try:
        pool: list[_Running] = []
        invocations: list[dict[str, Any]] = []
        for _ in range(instances):
            running = platform.start()
            if running is None:
                return platform.report(invocations)  # the checker has seen enough
            pool.append(running)
        for i, event in enumerate(events):
            result = platform.invoke(pool[i % instances], event, timeout, grace=0.5)
            invocations.append(result)
            if not result.get("ok"):
                break  # the checker has seen enough
        return platform.report(invocations)
    finally:
        platform.stop_all()


def _progress(url: str) -> dict[str, Any] | None:
    """What the checker's image service has rendered so far: photos, and renders in all."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            seen: dict[str, Any] = json.loads(response.read())
            return seen
    except (OSError, ValueError):
        return None


def until_done(
    file: str,
    event: Any,
    timeout: float,
    grace: float,
    most: int,
    reuse: int,
    progress_url: str,
    budget: float,
) -> dict[str, Any]:
    """The same event, again and again, until the handler returns {"done": true}.

    An instance serves at most `reuse` invocations before it is reclaimed. The run ends
    at a killed, crashed or failed invocation, or when going on would show nothing new:
    a photo rendered twice, an invocation that rendered nothing, `most` invocations, or
    `budget` seconds. The image service's count only decides when to stop; the checker
    judges from its own records.
    """
    platform = Platform(file)
    invocations: list[dict[str, Any]] = []
    begun = time.monotonic()
    rendered = 0
    try:
        running: _Running | None = None
        for _ in range(most):
            if time.monotonic() - begun > budget:
                break
            if running is None or running.invocations >= reuse:
                if running is not None:
                    platform.stop(running)
                running = platform.start()
                if running is None:
                    break
            result = platform.invoke(running, event, timeout, grace)
            invocations.append(result)
            if not result.get("ok"):
                break
            value = result.get("value")
            if isinstance(value, dict) and value.get("done") is True:
                break
            seen = _progress(progress_url)
            if seen is not None:
                if seen["renders"] > seen["photos"] or seen["photos"] <= rendered:
                    break
                rendered = seen["photos"]
        return platform.report(invocations)
    finally:
        platform.stop_all()
