"""Lab proofs started when the test session starts and run beside the other tests.

A proof mostly waits: on locks it arranges, on keys that must expire, on a broker. Run
one after another at their turn in the session they took about half of CI's time while a
core sat idle. The session now hands every proof it collected to a small pool as it
starts, the proof tests run last, and each one only waits for its lab's result, which is
usually in by then. The proofs still run as a learner's `sdtutor content check` would, one
process per lab and provider, against the real servers. On the local provider they share
private servers of their own (conftest's `proofs`), apart from the other tests' ones.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tests.homes import stop_all

JOBS_ENV = "SDTUTOR_TEST_PROOFS_AT_ONCE"
"""How many labs are proved at once in the background (each proves 3 cases at a time)."""
DEFAULT_JOBS = 2
PROOF_TIMEOUT = 600
"""Seconds one lab's proof may take, from when it starts (not from when it was queued)."""
STOP_GRACE = 60
"""Seconds an interrupted proof gets to remove what it made before it is killed."""


@dataclass(frozen=True)
class Proved:
    """How one lab's proof ended."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float


class BackgroundProofs:
    """A pool that proves labs in subprocesses; `result()` waits for one of them."""

    def __init__(self, jobs: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="proof")
        self._futures: dict[tuple[str, str], Future[Proved]] = {}
        self._running: set[subprocess.Popen[str]] = set()
        self._lock = threading.Lock()
        self._stopping = False

    @staticmethod
    def jobs() -> int:
        text = os.environ.get(JOBS_ENV, "").strip()
        return max(1, int(text)) if text.isdigit() else DEFAULT_JOBS

    def submit(
        self,
        slug: str,
        provider: str,
        env: Mapping[str, str],
        own_home: bool = False,
        cases: tuple[str, ...] = (),
    ) -> None:
        """Queue the proof of lab `slug` on `provider` (proofs start in the order queued);
        only `cases` of it when given (`content check --case`). `own_home`: the
        SDTUTOR_HOME in `env` is this proof's alone; whatever it left there (a kept
        template, a role) is removed when the proof ends."""
        self._futures[(slug, provider)] = self._pool.submit(
            self._prove_and_tidy, slug, dict(env), own_home, cases
        )

    def result(self, slug: str, provider: str) -> Proved:
        """Wait for the proof of `slug` on `provider` to end."""
        return self._futures[(slug, provider)].result()

    def _prove_and_tidy(
        self, slug: str, env: dict[str, str], own_home: bool, cases: tuple[str, ...]
    ) -> Proved:
        try:
            return self._prove(slug, env, cases)
        finally:
            if own_home:
                stop_all(Path(env["SDTUTOR_HOME"]), env)

    @staticmethod
    def _env(env: Mapping[str, str]) -> dict[str, str]:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("SDTUTOR_")}
        full_env.update({"COLUMNS": "100", "NO_COLOR": "1", **env})
        return full_env

    def _prove(self, slug: str, env: dict[str, str], cases: tuple[str, ...]) -> Proved:
        # The course is linted once elsewhere (tests/test_lab_proofs.py): prove only.
        command = [sys.executable, "-m", "sdtutor", "content", "check", "--no-lint"]
        command += ["--lab", slug, *(arg for case in cases for arg in ("--case", case))]
        started = time.monotonic()
        with self._lock:
            if self._stopping:
                return Proved(130, "", "the test session stopped before this proof began", 0.0)
            # Its own session: a Ctrl-C at the terminal does not reach it; stop() passes
            # one SIGINT on, so the proof removes what it made before it exits.
            child = subprocess.Popen(
                command,
                env=self._env(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            self._running.add(child)
        try:
            stdout, stderr = child.communicate(timeout=PROOF_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._interrupt(child)
            stdout, stderr = child.communicate()
            stderr += f"\n(the proof ran past {PROOF_TIMEOUT} s and was stopped)"
        finally:
            with self._lock:
                self._running.discard(child)
        return Proved(child.returncode, stdout, stderr, time.monotonic() - started)

    @staticmethod
    def _interrupt(child: subprocess.Popen[str]) -> None:
        """SIGINT, so the proof cleans up; SIGKILL to its whole group after the grace."""
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGINT)
        try:
            child.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)

    def stop(self) -> None:
        """Cancel proofs not begun, interrupt those running, and wait for them to clean up."""
        with self._lock:
            self._stopping = True
            running = list(self._running)
        self._pool.shutdown(wait=False, cancel_futures=True)
        threads = [threading.Thread(target=self._interrupt, args=(c,)) for c in running]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self._pool.shutdown(wait=True)
