"""One private server on this machine: the shape every kind shares.

A `LocalServer` is one server per (SDTUTOR_HOME, kind, name). Its state (password, port,
pid) is a 0600 JSON file `SDTUTOR_HOME/services/<kind>-<name>.json`, its lock
`<kind>-<name>.lock` beside it, and its data a folder made by `account.ensure_server_dir`.
The first start is all or nothing: if initialising or starting fails or is interrupted
(Ctrl-C), the process is stopped and the half-made folder removed before the exception
propagates. Server processes get a minimal environment (nothing of the caller's PG*,
REDIS*, RABBITMQ*, ERL_* or secrets), run in their own session so Ctrl-C in the terminal
does not reach them, and as root run as the service account.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, ClassVar

from sdtutor import locations
from sdtutor.errors import ProviderError
from sdtutor.providers.base import Availability, Progress, no_progress
from sdtutor.services.local import account as acct
from sdtutor.services.local.account import Account

_NAME = re.compile(r"[a-z][a-z0-9_-]{0,30}\Z")
SERVER_ID_VAR = "SDTUTOR_SERVER_ID"
"""Set in every server process's environment, so all of a server's processes can be found."""
_spawned: dict[int, subprocess.Popen[bytes]] = {}


class LocalServer(ABC):
    """A private server of one kind, started from binaries on this machine."""

    kind: ClassVar[str]
    """The service kind: "postgres", "redis" or "rabbitmq"."""
    label: ClassVar[str]
    """How the kind is named in messages ("PostgreSQL")."""

    def __init__(self, name: str = "main") -> None:
        if not _NAME.match(name):
            raise ValueError(f"not a server name (lowercase letters, digits, _ and -): {name!r}")
        self.name = name
        self.dirname = f"{self.kind}-{name}"
        services = locations.services_dir()
        self.state_file = services / f"{self.dirname}.json"
        self.lock_file = services / f"{self.dirname}.lock"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    # ---------------------------------------------------------------- public

    @classmethod
    @abstractmethod
    def find_binaries(cls) -> Availability:
        """Whether this kind's binaries are here (cached, never raises); `fix` says how."""

    def unmet_settings(self, settings: Mapping[str, str]) -> list[str]:
        """The lab's server settings this server does not run with, as `name = value`
        phrases; every one, unless the kind says which it runs with (its servers are
        shared by a home's labs, so a lab cannot change them)."""
        return [f"{name} = {value}" for name, value in settings.items()]

    def ensure_running(self, progress: Progress = no_progress) -> str:
        """Initialise once, start if down, wait until it answers; returns the admin URL.

        Raises ProviderError when it cannot; a first start interrupted or failed leaves
        nothing behind, a later start interrupted leaves the data and no process.
        """
        self._require_binaries()
        runner = acct.ensure_account()
        with self.locked():
            if not self.initialised():
                self._first_start(runner, progress)
            elif not self.running():
                try:
                    self._start(progress)
                except BaseException:
                    quietly(self._kill)
                    raise
            return self.admin_url()

    @abstractmethod
    def running(self) -> bool:
        """True when the server's process is up (it may still be starting)."""

    @abstractmethod
    def admin_url(self) -> str:
        """The admin (superuser) URL; raises ProviderError if it was never initialised."""

    def stop(self) -> None:
        """Stop the server and keep its data (the next start is quick)."""
        with self.locked():
            if self.running():
                self._stop()

    def destroy(self) -> None:
        """Stop the server and delete all its data and state."""
        with self.locked():
            self._kill()
            self._sweep()
            self._wipe()

    def locked(self) -> AbstractContextManager[None]:
        """An exclusive lock on this server between terminals (re-entrant in a process)."""
        return acct.file_lock(self.lock_file)

    def initialised(self) -> bool:
        """True when a first start completed and its data is still there."""
        folder = self.folder()
        return (
            bool(self.state().get("initialised"))
            and folder is not None
            and folder.is_dir()
            and not folder.is_symlink()
            and self._data_present(folder)
        )

    def extra(self) -> dict[str, Any]:
        """Facts for an Endpoint handle (data folder, version...)."""
        return {"folder": str(self.folder())}

    def folder(self) -> Path | None:
        """The server's data folder (None when this home never made one)."""
        return acct.server_dir(self.dirname)

    # ---------------------------------------------------------------- state

    def state(self) -> dict[str, Any]:
        """What the state file records (empty when there is none)."""
        import json

        try:
            data = json.loads(self.state_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def save_state(self, state: dict[str, Any]) -> None:
        """Replace the state file (0600)."""
        acct.write_json(self.state_file, state)

    def update_state(self, **values: Any) -> dict[str, Any]:
        """Set some keys of the state file; returns the new state."""
        state = self.state()
        state.update(values)
        self.save_state(state)
        return state

    def _require_state(self, *keys: str) -> dict[str, Any]:
        state = self.state()
        missing = [key for key in keys if key not in state]
        if missing or not state.get("initialised"):
            raise ProviderError(
                f"The local {self.label} server '{self.name}' has not been started yet.",
                "Start a lab that uses it first.",
            )
        return state

    # ---------------------------------------------------------------- kind hooks

    @abstractmethod
    def _initialise(self, folder: Path, progress: Progress) -> None:
        """Make the server's files in `folder` (it may also start the server)."""

    @abstractmethod
    def _start(self, progress: Progress) -> None:
        """Start an initialised server on a free port and wait until it answers."""

    @abstractmethod
    def _stop(self) -> None:
        """Stop the server gracefully; raises ProviderError if it will not stop."""

    @abstractmethod
    def _kill(self) -> None:
        """Stop the server at once if anything of it runs (no error when nothing does)."""

    def _data_present(self, folder: Path) -> bool:
        return True

    # ---------------------------------------------------------------- shared machinery

    def _require_binaries(self) -> None:
        found = type(self).find_binaries()
        if not found.ok:
            raise ProviderError(f"No local {self.label}: {found.detail}.", found.fix)

    def _first_start(self, runner: Account | None, progress: Progress) -> None:
        self._clear_leftovers()
        try:
            folder = acct.ensure_server_dir(self.dirname, runner)
            self._initialise(folder, progress)
            if not self.running():
                self._start(progress)
            self.update_state(initialised=True)
        except BaseException:
            self._abandon()
            raise

    def _clear_leftovers(self) -> None:
        """Before a first start: stop what an earlier half-made one left, refuse planted links."""
        quietly(self._kill)
        quietly(self._sweep)
        acct.remove_server_dir(self.dirname, refuse_links=True)
        self.save_state({"server_id": secrets.token_hex(8)})

    def _abandon(self) -> None:
        """After a failed or interrupted first start: no process, no files."""
        quietly(self._kill)
        quietly(self._sweep)
        quietly(self._wipe)

    def _wipe(self) -> None:
        acct.remove_server_dir(self.dirname)
        self.state_file.unlink(missing_ok=True)

    def main_pid(self) -> int | None:
        """The pid of the server's main process as recorded (it may have exited)."""
        pid = self.state().get("pid")
        return int(pid) if pid else None

    def _main_cmdline(self) -> bytes:
        """Bytes the main process's command line holds (tells it from a reused pid)."""
        return b""

    def processes(self) -> list[int]:
        """Live processes of this server (Linux: via /proc; [] elsewhere).

        Those of its account that descend from its main process or carry its id in their
        environment (a daemon it forked off, such as RabbitMQ's epmd). Servers that set
        their process title (PostgreSQL, Redis) overwrite their environment, hence both.
        """
        table = _process_table(self._runner_uid())
        found: set[int] = set()
        root = self.main_pid()
        if root in table and process_alive(root, self._runner_uid(), self._main_cmdline()):
            found.add(root)
            children: dict[int, list[int]] = {}
            for pid, ppid in table.items():
                children.setdefault(ppid, []).append(pid)
            todo = [root]
            while todo:
                for child in children.get(todo.pop(), []):
                    if child not in found:
                        found.add(child)
                        todo.append(child)
        server_id = self.state().get("server_id")
        if server_id:
            marker = f"{SERVER_ID_VAR}={server_id}".encode()
            for pid in table:
                try:
                    environ = Path(f"/proc/{pid}/environ").read_bytes()
                except OSError:
                    continue
                if marker in environ.split(b"\0"):
                    found.add(pid)
        found.discard(os.getpid())
        return sorted(found)

    def _sweep(self) -> None:
        """SIGKILL whatever of this server still runs (helpers, a private epmd...)."""
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _runner(self) -> Account | None:
        """Who the server runs as (None: this user)."""
        return acct.existing_account() if acct.runs_as_root() else None

    def _runner_uid(self) -> int:
        runner = self._runner()
        return runner.uid if runner else os.geteuid()

    def _env(self, folder: Path, **extra: str) -> dict[str, str]:
        """A minimal environment: the caller's PATH and time zone, nothing else of it."""
        env = {
            "PATH": os.environ.get("PATH") or os.defpath,
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "HOME": str(folder),
        }
        if "TZ" in os.environ:
            env["TZ"] = os.environ["TZ"]
        server_id = self.state().get("server_id")
        if server_id:
            env[SERVER_ID_VAR] = str(server_id)
        runner = self._runner()
        if runner is not None:
            env["USER"] = env["LOGNAME"] = runner.name
        env.update(extra)
        return env

    def _run(
        self,
        args: list[str],
        folder: Path,
        *,
        timeout: float = 60,
        stdin: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a tool as the server's account, in its folder, with the minimal environment."""
        runner = self._runner()
        kwargs: dict[str, Any] = runner.process_kwargs() if runner else {}
        return subprocess.run(
            args,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=str(folder),
            env=env if env is not None else self._env(folder),
            start_new_session=True,  # Ctrl-C in the terminal must not reach the server
            **kwargs,
        )

    def _spawn(self, args: list[str], folder: Path, env: dict[str, str], log: str) -> int:
        """Start a long-running server process in its own session; returns its pid."""
        runner = self._runner()
        kwargs: dict[str, Any] = runner.process_kwargs() if runner else {}
        log_fd = acct.open_log(folder, log, runner)
        try:
            process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=subprocess.STDOUT,
                cwd=str(folder),
                env=env,
                start_new_session=True,
                **kwargs,
            )
        finally:
            os.close(log_fd)
        _spawned[process.pid] = process
        return process.pid


# ---------------------------------------------------------------- processes


def _process_table(uid: int) -> dict[int, int]:
    """Live (not zombie) processes of `uid`, as {pid: parent pid}; {} without /proc."""
    table: dict[int, int] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        status = _proc_status(int(entry.name))
        if status is None or status.get("State", "").startswith(("Z", "X")):
            continue
        try:
            if int(status.get("Uid", "-1").split()[0]) == uid:
                table[int(entry.name)] = int(status.get("PPid", "0"))
        except ValueError:
            continue
    return table


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _proc_status(pid: int) -> dict[str, str] | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def process_alive(pid: int | None, uid: int, cmdline_has: bytes = b"") -> bool:
    """True when `pid` runs (not a zombie) as `uid`, its command line holding `cmdline_has`.

    The command-line test guards against a recorded pid reused after a reboot.
    """
    if not pid or pid <= 0:
        return False
    process = _spawned.get(pid)
    if process is not None and process.poll() is not None:
        del _spawned[pid]
        return False
    if not Path("/proc/self/status").exists():  # no procfs (macOS): trust the pid
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    status = _proc_status(pid)
    if status is None or status.get("State", "").startswith(("Z", "X")):
        return False
    if int(status.get("Uid", "-1").split()[0]) != uid:
        return False
    if cmdline_has:
        try:
            return cmdline_has in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
    return True


def group_members(pgid: int, uid: int) -> list[int]:
    """Live processes of `uid` in process group `pgid` (via /proc; [] without it)."""
    members: list[int] = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 3 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            pid = int(entry.name)
            if process_alive(pid, uid):
                members.append(pid)
    return members


def signal_group(pgid: int, sig: int, uid: int) -> None:
    """Send `sig` to every live process of `uid` in group `pgid` (the server's session)."""
    pids = group_members(pgid, uid)
    if not pids and process_alive(pgid, uid):
        pids = [pgid]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def wait_gone(check: Callable[[], bool], timeout: float) -> bool:
    """Wait until `check()` is false; True if it became false in time."""
    deadline = time.monotonic() + timeout
    while check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def stop_group(pgid: int, uid: int, grace: float, leader_has: bytes = b"") -> None:
    """SIGTERM the server's process group, then SIGKILL what remains after `grace` s.

    If the leader's pid now belongs to another program (`leader_has` is not in its
    command line: the pid was reused), nothing is signalled.
    """
    if process_alive(pgid, uid) and not process_alive(pgid, uid, leader_has):
        return

    def alive() -> bool:
        return process_alive(pgid, uid) or bool(group_members(pgid, uid))

    if not alive():
        return
    signal_group(pgid, signal.SIGTERM, uid)
    if wait_gone(alive, grace):
        return
    signal_group(pgid, signal.SIGKILL, uid)
    if not wait_gone(alive, 5):
        raise ProviderError(f"Process group {pgid} would not stop, even after SIGKILL.")


def quietly(action: Callable[[], None]) -> None:
    """Best-effort cleanup: its own failures must not hide the error being handled."""
    with contextlib.suppress(Exception):
        action()


def tail(text: str, lines: int = 12) -> str:
    """The last lines of some output."""
    return "\n".join(text.strip().splitlines()[-lines:])


def availability(label: str, kind: str, found: bool, detail: str, fix: str) -> Availability:
    """An Availability that also says which account servers run as (root) and if it can be made."""
    if not found:
        return Availability(False, detail, fix)
    if acct.runs_as_root():
        if acct.existing_account() is None and acct.useradd_path() is None:
            return Availability(
                False,
                f"{detail}, but sdtutor runs as root and cannot make the account "
                f"'{acct.SERVICE_ACCOUNT}' to run {label} as (no useradd)",
                acct.ACCOUNT_FIX,
            )
        detail += f" (run as the account '{acct.SERVICE_ACCOUNT}', since sdtutor runs as root)"
    return Availability(True, detail, services=(kind,))


__all__ = [
    "LocalServer",
    "availability",
    "free_port",
    "group_members",
    "process_alive",
    "quietly",
    "signal_group",
    "stop_group",
    "tail",
    "wait_gone",
]
