"""Running a lab's checks: in order, each isolated, all within one deadline.

Each check runs in a worker thread while this thread keeps the clock. At the deadline
the check's statements are cancelled and OutOfTime is thrown into it; it is reported as
failed ("ran out of time") and the checks after it as "not run". A check that will not
stop even then (blocked inside a C call that ignores cancellation) is left behind in its
daemon thread, which closes the connections once it ends, so run_checks still returns.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sdtutor.content.models import CheckSpec, LabSpec
from sdtutor.errors import LabError
from sdtutor.lab.checks.context import CheckContext
from sdtutor.lab.checks.outcome import CannotCheck, Fail, OutOfTime, Pass
from sdtutor.lab.checks.registry import CheckFunction, CheckOutcome, load_checks
from sdtutor.lab.results import CheckResult, Evidence

GRACE = 2.0  # seconds a check gets to stop after the deadline
TICK = 0.2  # how often the clock is looked at


def default_deadline(lab: LabSpec) -> float:
    """Seconds for a whole `lab check`: the lab's time_limit for each of its checks."""
    return lab.time_limit * max(len(lab.checks), 1)


@dataclass
class _Worker:
    """One check running in its own thread."""

    thread: threading.Thread | None = None
    result: CheckResult | None = None
    cannot: CannotCheck | None = None
    abandoned: bool = False
    close_when_done: CheckContext | None = None


def _outcome(ctx: CheckContext, spec: CheckSpec, fn: CheckFunction) -> CheckResult:
    try:
        returned: CheckOutcome | None = fn(ctx)
    except Pass as passed:
        return CheckResult(spec.id, spec.title, True, passed.message, tuple(passed.evidence))
    except Fail as failure:
        return CheckResult(spec.id, spec.title, False, failure.message, tuple(failure.evidence))
    except (CannotCheck, OutOfTime):
        raise
    except Exception as exc:  # the learner may have broken what a check relies on
        translated = ctx.translate(exc)
        if isinstance(translated, Fail):
            return CheckResult(
                spec.id, spec.title, False, translated.message, tuple(translated.evidence)
            )
        if isinstance(translated, OutOfTime):
            raise translated from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        reason = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
        return CheckResult(
            spec.id,
            spec.title,
            False,
            f"This check could not finish: {reason}. If you changed the lab's tables or "
            f"data, `sdtutor lab reset {ctx.lab.topic}` restores them (your files are kept "
            "aside).",
            status="error",
        )
    if isinstance(returned, Pass):
        return CheckResult(spec.id, spec.title, True, returned.message, tuple(returned.evidence))
    if isinstance(returned, tuple):
        message, evidence = returned
        return CheckResult(spec.id, spec.title, True, message, tuple(evidence))
    return CheckResult(spec.id, spec.title, True, str(returned or "Passed."))


def _throw(thread: threading.Thread, exc_type: type[BaseException]) -> None:
    """Raise exc_type inside a running thread (at its next Python instruction)."""
    if thread.ident is not None and thread.is_alive():
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(thread.ident), ctypes.py_object(exc_type)
        )


def _run_one(
    ctx: CheckContext, spec: CheckSpec, fn: CheckFunction, ends: float, worker: _Worker
) -> CheckResult | None:
    """Run one check in a worker thread; None when the deadline came first."""

    def body() -> None:
        try:
            worker.result = _outcome(ctx, spec, fn)
        except CannotCheck as exc:
            worker.cannot = exc
        except OutOfTime:
            pass
        finally:
            if worker.close_when_done is not None:
                worker.close_when_done.close()

    thread = worker.thread = threading.Thread(
        target=body, name=f"sdtutor-check-{spec.id}", daemon=True
    )
    ctx.begin_check()
    thread.start()
    try:
        while thread.is_alive() and time.monotonic() < ends:
            thread.join(min(TICK, max(ends - time.monotonic(), 0.01)))
    except BaseException:  # Ctrl-C: stop the check as at the deadline, then go on out
        _stop(ctx, thread, worker)
        raise
    if thread.is_alive():
        _stop(ctx, thread, worker)
        return None
    if worker.cannot is not None:
        raise worker.cannot
    return worker.result  # None when it ended by OutOfTime just as the deadline came


def _stop(ctx: CheckContext, thread: threading.Thread, worker: _Worker) -> None:
    ctx.interrupt()
    _throw(thread, OutOfTime)
    thread.join(GRACE)
    worker.abandoned = thread.is_alive()


def run_checks(
    lab: LabSpec,
    workspace: Path,
    urls: dict[str, str],
    *,
    deadline: float | None = None,
    prefixes: dict[str, str] | None = None,
    statement_timeout: float | None = None,
    lock_timeout: float | None = None,
) -> list[CheckResult]:
    """Run every check a lab declares, in order; a crash in one never hides the others.

    `deadline` is the seconds the whole run may take (default: the lab's time_limit for
    each check, see default_deadline). A check still running then is stopped and
    reported as having run out of time; the checks after it as not run. Raises LabError
    when a check cannot run at all (a service is down).
    """
    functions = load_checks(lab)
    budget = default_deadline(lab) if deadline is None else deadline
    ends = time.monotonic() + budget
    ctx = CheckContext(lab, workspace, urls, prefixes=dict(prefixes or {}), deadline=ends)
    if statement_timeout is not None:
        ctx.statement_timeout = statement_timeout
    if lock_timeout is not None:
        ctx.lock_timeout = lock_timeout
    results: list[CheckResult] = []
    workers: list[_Worker] = []
    try:
        for index, spec in enumerate(lab.checks):
            fn = functions.get(spec.id)
            if fn is None:
                results.append(
                    CheckResult(
                        spec.id,
                        spec.title,
                        False,
                        "checks.py has no check with this id",
                        status="error",
                    )
                )
                continue
            if time.monotonic() >= ends:
                results += _not_run(lab.checks[index:], budget)
                break
            workers.append(_Worker())
            try:
                result = _run_one(ctx, spec, fn, ends, workers[-1])
            except CannotCheck as exc:
                raise LabError(
                    f"The check '{spec.id}' cannot run: {exc}",
                    "Is the lab running? `sdtutor lab info` shows its state; "
                    "`sdtutor lab start` starts it again.",
                ) from None
            if result is None:
                results.append(_out_of_time(spec, budget))
                results += _not_run(lab.checks[index + 1 :], budget)
                break
            results.append(result)
    finally:
        stuck = next((w for w in workers if w.abandoned), None)
        if stuck is None:
            ctx.close()
        else:  # closing a connection under a running call could crash: the worker closes
            stuck.close_when_done = ctx
            if stuck.thread is None or not stuck.thread.is_alive():
                ctx.close()
    return results


def _out_of_time(spec: CheckSpec, budget: float) -> CheckResult:
    return CheckResult(
        spec.id,
        spec.title,
        False,
        f"This check ran out of time: it was still running when the {budget:g} s for the "
        f"whole `lab check` were up, and was stopped. Something it waits for is far slower "
        f"than it should be: your code not returning, or a query reading far too much.",
        (Evidence("time allowed", "text", f"{budget:g} s for all checks together"),),
        status="timeout",
    )


def _not_run(specs: Sequence[CheckSpec], budget: float) -> list[CheckResult]:
    return [
        CheckResult(
            spec.id,
            spec.title,
            False,
            f"Not run: the {budget:g} s for the whole `lab check` were up before this "
            "check could start.",
            status="not run",
        )
        for spec in specs
    ]


__all__ = ["default_deadline", "run_checks"]
