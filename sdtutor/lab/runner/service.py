"""start_service: the learner's own server, on an assigned port, under the supervisor."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from sdtutor.errors import LabError
from sdtutor.lab.proxy import Proxy
from sdtutor.lab.runner.isolation import Isolation, Sandbox, current_isolation, prepare
from sdtutor.lab.runner.launch import (
    Supervised,
    check_file,
    learner_env,
    new_token,
    open_proxies,
)
from sdtutor.lab.runner.limits import Limits
from sdtutor.lab.runner.results import Service


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServiceHandle:
    """The learner's running server: its URL, logs, proxies, and stop / kill / restart."""

    def __init__(
        self,
        workspace: Path,
        command: list[str] | str,
        port: int,
        services: Mapping[str, Service],
        env: Mapping[str, str] | None,
        limits: Limits,
        ready: Sequence[str],
        ready_timeout: float,
        proxies: Mapping[str, Proxy] | None,
        files: Mapping[str, str | bytes] | None = None,
    ) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.ready = tuple(ready)
        self.ready_timeout = ready_timeout
        self._command = command
        self._limits = limits
        self._iso: Isolation = current_isolation()
        self.proxies, self._owned = open_proxies(services, proxies)
        self._sandbox: Sandbox | None = prepare(workspace, self._iso, files)
        self._token = new_token()
        self._env = learner_env(services, self.proxies, env, self._sandbox, self._token)
        self._env["PORT"] = str(port)
        self._logs: list[str] = []
        self._log_size = 0
        self._lock = threading.Lock()
        self._sup: Supervised | None = None
        self._reader: threading.Thread | None = None
        self._ended = threading.Event()
        self.exit_code: int | None = None
        """The server process's exit status once it has ended (negative: a signal)."""

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> ServiceHandle:
        """Start the server and wait until it answers (raises LabError if it does not)."""
        assert self._sandbox is not None
        child: dict[str, object] = {"mode": "serve", "workspace": str(self._sandbox.workdir)}
        if isinstance(self._command, str):
            child["module"] = self._command
        else:
            child["argv"] = list(self._command)
        self._ended.clear()
        self.exit_code = None
        self._sup = Supervised(
            "service",
            [child],
            iso=self._iso,
            sandbox=self._sandbox,
            env=self._env,
            limits=self._limits,
            token=self._token,
        )
        self._reader = threading.Thread(target=self._read, args=(self._sup,), daemon=True)
        self._reader.start()
        self._wait_ready()
        return self

    def _read(self, sup: Supervised) -> None:
        try:
            for event in sup.events(None):
                if event["t"] == "out":
                    self._add_log(event["d"])
                elif event["t"] == "exit":
                    self.exit_code = event["exit_code"]
                elif event["t"] == "end":
                    if event.get("error"):
                        self._add_log(f"[sdtutor: could not start: {event['error']}]\n")
                    break
        except (OSError, ValueError, LabError):
            pass
        finally:
            self._ended.set()

    def _add_log(self, text: str) -> None:
        with self._lock:
            self._logs.append(text)
            self._log_size += len(text)
            while self._log_size > self._limits.output_bytes and len(self._logs) > 1:
                self._log_size -= len(self._logs.pop(0))

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if not self.alive():
                self._ended.wait(1)
                self._stop_supervisor()
                raise LabError(
                    f"Your service ended ({self._exit_text()}) before it answered on port "
                    f"{self.port}.",
                    self._tail_hint(),
                )
            if self._answers():
                return
            time.sleep(0.05)
        self.kill()
        raise LabError(
            f"Your service did not answer on port {self.port} within {self.ready_timeout:g} s.",
            "It must listen on 127.0.0.1 at the port in the PORT environment variable.\n"
            + self._tail_hint(),
        )

    def _answers(self) -> bool:
        if self.ready[0] == "http":
            path = self.ready[1] if len(self.ready) > 1 else "/"
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
            try:
                conn.request("GET", path)
                return conn.getresponse().status < 500
            except (OSError, http.client.HTTPException):
                return False
            finally:
                conn.close()
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def _exit_text(self) -> str:
        code = self.exit_code
        if code is None:
            return "it did not start"
        return f"exit code {code}" if code >= 0 else f"killed by signal {-code}"

    def _tail_hint(self) -> str:
        tail = self.logs()[-1500:].strip()
        return f"Its last output:\n{tail}" if tail else "It printed nothing."

    def logs(self) -> str:
        """The server's output so far (stdout and stderr, the last Limits.output_bytes)."""
        with self._lock:
            return "".join(self._logs)

    def wait_for_log(self, text: str, timeout: float = 5.0) -> bool:
        """Wait until `text` appears in the logs; False if it did not within `timeout`."""
        deadline = time.monotonic() + timeout
        while text not in self.logs():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def alive(self) -> bool:
        """The server process is running."""
        return self._sup is not None and not self._ended.is_set() and self.exit_code is None

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the server; after `grace` seconds kill its whole tree."""
        if self._sup is not None:
            self._sup.send(f"term {grace}")
            self._ended.wait(grace + 2)
        self._stop_supervisor()

    def kill(self) -> None:
        """Kill the server's whole tree at once."""
        if self._sup is not None:
            self._sup.send("kill")
            self._ended.wait(2)
        self._stop_supervisor()

    def restart(self) -> ServiceHandle:
        """Stop the server and start it again on the same port, behind the same proxies."""
        self.stop()
        return self.start()

    def _stop_supervisor(self) -> None:
        sup, self._sup = self._sup, None
        if sup is not None:
            sup.close()
            self._ended.wait(2)
        if self._reader is not None:
            self._reader.join(timeout=2)

    def close(self) -> None:
        """Kill the tree, close the proxies this handle opened, delete its private files."""
        self.kill()
        for proxy in self._owned:
            proxy.close()
        if self._sandbox is not None:
            self._sandbox.cleanup()
            self._sandbox = None

    def __enter__(self) -> ServiceHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def start_service(
    workspace: Path,
    argv_or_module: Sequence[str] | str,
    *,
    port: int | None = None,
    services: Mapping[str, Service] | None = None,
    env: Mapping[str, str] | None = None,
    limits: Limits = Limits(),
    ready: Sequence[str] = ("tcp",),
    ready_timeout: float = 10.0,
    proxies: Mapping[str, Proxy] | None = None,
    files: Mapping[str, str | bytes] | None = None,
) -> ServiceHandle:
    """Start the learner's server (`["app.py", ...]` or a module name) and wait until it answers.

    PORT in its environment holds the port (a free one unless given). `ready` is ("tcp",)
    for a port that accepts connections or ("http", "/path") for an HTTP answer below 500.
    Raises LabError, with the server's last output, if it ends or does not answer within
    `ready_timeout`. Limits.timeout does not apply: the handle's owner stops the server.
    `files` are added to its private copy of the workspace, as for run_function.
    """
    command: list[str] | str = (
        argv_or_module if isinstance(argv_or_module, str) else list(argv_or_module)
    )
    if isinstance(command, list):
        if not command:
            raise ValueError("argv must name a script")
        missing = check_file(Path(workspace), command[0], files)
        if missing:
            raise LabError(missing.capitalize() + ".")
    handle = ServiceHandle(
        Path(workspace),
        command,
        port if port is not None else free_port(),
        services or {},
        env,
        limits,
        ready,
        ready_timeout,
        proxies,
        files,
    )
    try:
        return handle.start()
    except BaseException:
        handle.close()
        raise
