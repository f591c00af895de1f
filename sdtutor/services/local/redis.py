"""A private Redis: `redis-server` with a generated config, on a free loopback port.

The password is `requirepass` in a 0600 config file owned by the server's account, never
in argv; ACLs stay on (the `default` user has that password), so a lab can get its own
ACL user. Nothing persists (`save ""`, `appendonly no`): a restart starts empty, lab ACL
users included. The server runs in the foreground (`daemonize no`) in its own session,
with a pidfile; it is ready once AUTH and PING answer.
"""

from __future__ import annotations

import functools
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

from sdtutor.errors import ProviderError
from sdtutor.providers.base import Availability, Progress
from sdtutor.services.local import account as acct
from sdtutor.services.local.base import (
    LocalServer,
    availability,
    free_port,
    process_alive,
    stop_group,
)

CONFIG = "redis.conf"
LOG = "redis.log"
STARTUP_LOG = "startup.log"
MIN_MAJOR = 6  # ACL users


@functools.cache
def find_redis_server() -> tuple[str, str] | None:
    """The redis-server binary and its version (6 or later, for ACLs), if installed."""
    candidates = [shutil.which("redis-server")]
    candidates += ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
    candidates += ["/opt/homebrew/bin/redis-server"]
    for candidate in candidates:
        if not candidate or not Path(candidate).is_file():
            continue
        try:
            out = subprocess.run(
                [candidate, "--version"], capture_output=True, text=True, timeout=10
            ).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        version = next((w[2:] for w in out.split() if w.startswith("v=")), "")
        if version and version.split(".")[0].isdigit():
            return candidate, version
    return None


@functools.cache
def _availability() -> Availability:
    found = find_redis_server()
    fix = (
        "Install Redis 6 or later (Debian/Ubuntu: apt install redis-server; "
        "macOS: brew install redis)."
    )
    if found is None:
        return availability("Redis", "redis", False, "no redis-server found", fix)
    path, version = found
    if int(version.split(".")[0]) < MIN_MAJOR:
        return availability(
            "Redis", "redis", False, f"redis-server {version} in {path} is older than 6", fix
        )
    return availability("Redis", "redis", True, f"Redis {version} ({path})", fix)


def _conf_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _resp(*words: str) -> bytes:
    out = [f"*{len(words)}\r\n".encode()]
    for word in words:
        data = word.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def answers(port: int, password: str, timeout: float = 1.0) -> bool:
    """True when a Redis on 127.0.0.1:`port` accepts the password and answers PING."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(_resp("AUTH", "default", password) + _resp("PING"))
            reply = b""
            while reply.count(b"\r\n") < 2:
                chunk = sock.recv(256)
                if not chunk:
                    break
                reply += chunk
    except OSError:
        return False
    return reply.startswith(b"+OK\r\n+PONG\r\n")


class LocalRedis(LocalServer):
    """One private Redis server."""

    kind: ClassVar[str] = "redis"
    label: ClassVar[str] = "Redis"

    @classmethod
    def find_binaries(cls) -> Availability:
        """Whether redis-server (6 or later) is on this machine."""
        return _availability()

    # ---------------------------------------------------------------- public

    def running(self) -> bool:
        """True when this server's redis-server process runs."""
        state = self.state()
        # Redis sets its title to "redis-server 127.0.0.1:<port>".
        title = f"redis-server 127.0.0.1:{state.get('port')}".encode()
        return process_alive(state.get("pid"), self._runner_uid(), title)

    def admin_url(self) -> str:
        """`redis://default:<password>@127.0.0.1:<port>/0`."""
        state = self._require_state("password", "port")
        return f"redis://default:{quote(state['password'], safe='')}@127.0.0.1:{state['port']}/0"

    def extra(self) -> dict[str, Any]:
        """Facts for an Endpoint handle: data folder, version."""
        found = find_redis_server()
        return {**super().extra(), "version": found[1] if found else None}

    # ---------------------------------------------------------------- hooks

    def _main_cmdline(self) -> bytes:
        return b"redis-server"

    def _initialise(self, folder: Path, progress: Progress) -> None:
        progress("Preparing a private Redis server (once)", None)
        password = secrets.token_urlsafe(24)
        self.update_state(password=password)
        lines = [
            "# Written by sdtutor: a private lab server. Nothing is saved to disk.",
            "bind 127.0.0.1",
            "protected-mode yes",
            "daemonize no",
            f"pidfile {_conf_quote(str(folder / 'redis.pid'))}",
            f"logfile {_conf_quote(str(folder / LOG))}",
            f"dir {_conf_quote(str(folder))}",
            'save ""',
            "appendonly no",
            f"requirepass {password}",
        ]
        acct.write_private(folder, CONFIG, "\n".join(lines) + "\n", self._runner())

    def _start(self, progress: Progress) -> None:
        progress(f"Starting the local Redis server '{self.name}'", None)
        folder = self.folder()
        found = find_redis_server()
        assert folder is not None and found is not None
        password = self.state()["password"]
        for _attempt in range(4):
            port = free_port()
            pid = self._spawn(
                [found[0], str(folder / CONFIG), "--port", str(port)],
                folder,
                self._env(folder),
                STARTUP_LOG,
            )
            self.update_state(pid=pid, port=port)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and process_alive(pid, self._runner_uid()):
                if answers(port, password):
                    return
                time.sleep(0.05)
            self._kill()
            if "in use" not in self._log_tail(40):
                break
        raise ProviderError(
            f"The local Redis server '{self.name}' did not start.",
            f"Its log ({folder / LOG}) ends with:\n{self._log_tail()}",
        )

    def _stop(self) -> None:
        self._kill(grace=10)

    def _kill(self, grace: float = 2) -> None:
        pid = self.state().get("pid")
        if pid:
            stop_group(int(pid), self._runner_uid(), grace, b"redis-server")

    def _log_tail(self, lines: int = 12) -> str:
        folder = self.folder()
        text = "\n".join(
            part
            for part in (
                acct.read_tail(folder, STARTUP_LOG, lines),
                acct.read_tail(folder, LOG, lines),
            )
            if part
        )
        return text or "(no log)"


__all__ = ["LocalRedis", "answers", "find_redis_server"]
