"""A private RabbitMQ node: its own name, ports, data, cookie and epmd.

`rabbitmq-server` (the real script, not Debian's /usr/sbin wrapper that switches to the
`rabbitmq` account) runs with an environment that points everything into the node's
folder: RABBITMQ_NODENAME `sdtutor-<random>-<name>@localhost`, the config, an empty
rabbitmq-env.conf and plugin list (the machine's /etc/rabbitmq is never read), Mnesia and
logs, and HOME, so its Erlang cookie is the folder's own `.erlang.cookie` (0400; the
cookie is never on a command line). AMQP listens on `127.0.0.1:<free port>`
(`listeners.tcp.1` in rabbitmq.conf), Erlang distribution on another free loopback port.

epmd: the machine's broker runs an epmd on 4369. Sharing it would work (node names
differ), but if none runs, our node would start one that outlives it, and anything on
4369 could then see our node. So each node gets a private epmd on a free loopback port
(ERL_EPMD_PORT, ERL_EPMD_ADDRESS=127.0.0.1), which `stop` and `destroy` end with it.

After the first boot, `rabbitmqctl` (same environment, as the same account) deletes
`guest` and adds the admin user, its password given on stdin (`add_user NAME` reads it
there on 3.10). The node takes 5–20 s to boot; progress says so.
"""

from __future__ import annotations

import functools
import glob
import re
import secrets
import shutil
import socket
import time
from dataclasses import dataclass
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
    tail,
)

ADMIN_USER = "sdtutor-admin"
BOOT_TIMEOUT = 180
STARTUP_LOG = "startup.log"
_LOOPBACK_DIST = "-kernel inet_dist_use_interface {127,0,0,1}"


@dataclass(frozen=True)
class RabbitBinaries:
    """Where rabbitmq-server and rabbitmqctl live, and the broker's version."""

    sbin: Path
    version: str

    @property
    def server(self) -> str:
        """The rabbitmq-server script."""
        return str(self.sbin / "rabbitmq-server")

    @property
    def ctl(self) -> str:
        """The rabbitmqctl script."""
        return str(self.sbin / "rabbitmqctl")


def _is_account_wrapper(script: Path) -> bool:
    """Debian's /usr/sbin scripts switch to the `rabbitmq` account: not usable here."""
    try:
        head = script.read_bytes()[:8192]
    except OSError:
        return True
    return b"su rabbitmq" in head or b"rabbitmq-script-wrapper" in head


@functools.cache
def find_rabbitmq() -> RabbitBinaries | None:
    """Look for the RabbitMQ server scripts and Erlang (`erl`) on this machine."""
    if shutil.which("erl") is None:
        return None
    candidates = [Path("/usr/lib/rabbitmq/bin")]
    candidates += [
        Path(p) for p in sorted(glob.glob("/usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin"))[::-1]
    ]
    on_path = shutil.which("rabbitmq-server")
    if on_path:
        candidates.append(Path(on_path).parent)
    candidates += [Path("/opt/homebrew/opt/rabbitmq/sbin"), Path("/usr/local/opt/rabbitmq/sbin")]
    for sbin in candidates:
        server, ctl = sbin / "rabbitmq-server", sbin / "rabbitmqctl"
        if not (server.is_file() and ctl.is_file()) or _is_account_wrapper(server):
            continue
        match = re.search(r"rabbitmq(?:_server-|/)(\d+\.\d+[.\d]*)", str(server.resolve()))
        return RabbitBinaries(sbin, match.group(1) if match else "")
    return None


@functools.cache
def _availability() -> Availability:
    found = find_rabbitmq()
    fix = (
        "Install RabbitMQ and Erlang (Debian/Ubuntu: apt install rabbitmq-server; "
        "macOS: brew install rabbitmq)."
    )
    if found is None:
        return availability("RabbitMQ", "rabbitmq", False, "no rabbitmq-server and erl", fix)
    version = f"RabbitMQ {found.version}" if found.version else "RabbitMQ"
    return availability("RabbitMQ", "rabbitmq", True, f"{version} in {found.sbin}", fix)


def answers(port: int, timeout: float = 1.0) -> bool:
    """True when an AMQP 0-9-1 broker on 127.0.0.1:`port` answers the protocol header."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            first = sock.recv(1)
    except OSError:
        return False
    return first == b"\x01"  # a method frame: Connection.Start


def _distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


class LocalRabbitMQ(LocalServer):
    """One private RabbitMQ node."""

    kind: ClassVar[str] = "rabbitmq"
    label: ClassVar[str] = "RabbitMQ"

    @classmethod
    def find_binaries(cls) -> Availability:
        """Whether rabbitmq-server, rabbitmqctl and Erlang are on this machine."""
        return _availability()

    @property
    def binaries(self) -> RabbitBinaries:
        """The scripts in use; raises ProviderError when there are none."""
        found = find_rabbitmq()
        if found is None:
            raise ProviderError("No RabbitMQ server was found.", _availability().fix)
        return found

    def _data_present(self, folder: Path) -> bool:
        return (folder / "mnesia").is_dir()

    # ---------------------------------------------------------------- public

    def running(self) -> bool:
        """True when this node's rabbitmq-server process runs."""
        return process_alive(self.state().get("pid"), self._runner_uid(), b"rabbitmq-server")

    def admin_url(self) -> str:
        """`amqp://sdtutor-admin:<password>@127.0.0.1:<port>/%2F`."""
        state = self._require_state("password", "port")
        return (
            f"amqp://{ADMIN_USER}:{quote(state['password'], safe='')}@127.0.0.1:{state['port']}/%2F"
        )

    def node_name(self) -> str:
        """The Erlang node name (`sdtutor-<random>-<name>@localhost`)."""
        return str(self._require_state("node")["node"])

    def ctl(self, *args: str, stdin: str | None = None, timeout: float = 60) -> str:
        """Run `rabbitmqctl ARGS` against this node; returns its output.

        Secrets go in `stdin` (e.g. `ctl("add_user", name, stdin=password)`), never args.
        Raises ProviderError with the end of its output when it fails.
        """
        state = self.state()
        folder = self.folder()
        if folder is None or "epmd_port" not in state or not self.running():
            raise ProviderError(
                f"The local RabbitMQ node '{self.name}' is not running.",
                "Start a lab that uses it first.",
            )
        result = self._run(
            [self.binaries.ctl, *args],
            folder,
            timeout=timeout,
            stdin=stdin,
            env=self._node_env(folder, state),
        )
        if result.returncode != 0:
            raise ProviderError(
                f"rabbitmqctl {' '.join(args[:1])} failed on the local RabbitMQ '{self.name}'.",
                tail(result.stdout + "\n" + result.stderr),
            )
        return result.stdout

    # ---------------------------------------------------------------- hooks

    def _main_cmdline(self) -> bytes:
        return b"rabbitmq-server"

    def _initialise(self, folder: Path, progress: Progress) -> None:
        progress("Preparing a private RabbitMQ node (once)", None)
        runner = self._runner()
        self.update_state(
            password=secrets.token_urlsafe(24),
            node=f"sdtutor-{secrets.token_hex(4)}-{self.name}@localhost",
        )
        acct.write_private(folder, ".erlang.cookie", secrets.token_hex(32), runner, mode=0o400)
        acct.write_private(folder, "enabled_plugins", "[].\n", runner)
        acct.write_private(folder, "rabbitmq-env.conf", "", runner)
        for sub in ("mnesia", "log", "conf.d"):
            acct.make_subdir(folder, sub, runner)
        self._start(progress)
        progress("Creating the RabbitMQ admin user (once)", None)
        # add_user reads the password from stdin when it is not given as an argument.
        self.ctl("add_user", ADMIN_USER, stdin=self.state()["password"])
        self.ctl("set_user_tags", ADMIN_USER, "administrator")
        self.ctl("set_permissions", "-p", "/", ADMIN_USER, ".*", ".*", ".*")
        self.ctl("delete_user", "guest")

    def _start(self, progress: Progress) -> None:
        folder = self.folder()
        assert folder is not None
        step = f"Booting the private RabbitMQ node '{self.name}' (Erlang; 5–20 s)"
        progress(step, 0.0)
        for _attempt in range(3):
            port, dist_port, epmd_port = _distinct_free_ports(3)
            lines = [
                "# Written by sdtutor at each start: a private lab node.",
                f"listeners.tcp.1 = 127.0.0.1:{port}",
                "log.console = false",
                "log.file.level = info",
            ]
            acct.write_private(folder, "rabbitmq.conf", "\n".join(lines) + "\n", self._runner())
            state = self.update_state(port=port, dist_port=dist_port, epmd_port=epmd_port)
            pid = self._spawn(
                [self.binaries.server], folder, self._node_env(folder, state), STARTUP_LOG
            )
            self.update_state(pid=pid)
            started = time.monotonic()
            while process_alive(pid, self._runner_uid()):
                elapsed = time.monotonic() - started
                if answers(port):
                    progress(step, 1.0)
                    return
                if elapsed > BOOT_TIMEOUT:
                    break
                progress(step, min(0.95, elapsed / 15))
                time.sleep(0.25)
            log = self._log_tail(60)
            self._kill()
            if "eaddrinuse" not in log:
                break
        raise ProviderError(
            f"The local RabbitMQ node '{self.name}' did not start.",
            f"Its output ({folder / STARTUP_LOG}) ends with:\n{self._log_tail()}",
        )

    def _stop(self) -> None:
        self._kill(grace=60)

    def _kill(self, grace: float = 5) -> None:
        pid = self.state().get("pid")
        if pid:
            stop_group(int(pid), self._runner_uid(), grace, b"rabbitmq-server")
        self._stop_epmd()

    def _stop_epmd(self) -> None:
        """End this node's private epmd (it outlives the node otherwise)."""
        state = self.state()
        folder = self.folder()
        epmd = shutil.which("epmd")
        if epmd and folder is not None and folder.is_dir() and state.get("epmd_port"):
            self._run([epmd, "-kill"], folder, timeout=10, env=self._node_env(folder, state))
        self._sweep()  # and anything else of the node that lingers

    # ---------------------------------------------------------------- helpers

    def _node_env(self, folder: Path, state: dict[str, Any]) -> dict[str, str]:
        return self._env(
            folder,
            RABBITMQ_NODENAME=str(state["node"]),
            RABBITMQ_DIST_PORT=str(state.get("dist_port", "")),
            RABBITMQ_CONF_ENV_FILE=str(folder / "rabbitmq-env.conf"),
            RABBITMQ_CONFIG_FILE=str(folder / "rabbitmq.conf"),
            RABBITMQ_CONFIG_FILES=str(folder / "conf.d"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(folder / "advanced.config"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(folder / "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=str(folder / "mnesia"),
            RABBITMQ_LOG_BASE=str(folder / "log"),
            RABBITMQ_PID_FILE=str(folder / "rabbitmq.pid"),
            ERL_EPMD_PORT=str(state.get("epmd_port", "")),
            ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=_LOOPBACK_DIST,
            RABBITMQ_CTL_ERL_ARGS=_LOOPBACK_DIST,
        )

    def _log_tail(self, lines: int = 12) -> str:
        folder = self.folder()
        return acct.read_tail(folder, STARTUP_LOG, lines) or "(no output)"

    def extra(self) -> dict[str, Any]:
        """Facts for an Endpoint handle: node name, version."""
        state = self.state()
        return {**super().extra(), "node": state.get("node"), "version": self.binaries.version}


__all__ = ["ADMIN_USER", "LocalRabbitMQ", "RabbitBinaries", "answers", "find_rabbitmq"]
