"""The local provider: private servers from binaries already on this machine.

One server per (SDTUTOR_HOME, kind, name), from sdtutor.services.local: PostgreSQL
(`initdb`/`pg_ctl`), Redis (`redis-server`) and RabbitMQ (`rabbitmq-server` as a private
node). Labs share their home's server of a kind (`main`); a replica is a server of its
own, streaming from its primary. Each server remembers which labs use it and stops when
the last of them stops; its data stays on disk, so the next start is quick, until
`lab stop --all` destroys it. As root, servers run as the account `sdtutor-svc`, which
owns nothing else, with data under /var/lib/sdtutor.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sdtutor import locations
from sdtutor.errors import ProviderError
from sdtutor.providers.base import Availability, Endpoint, Progress, Provider, no_progress

if TYPE_CHECKING:
    from sdtutor.content.models import InstanceSpec
    from sdtutor.services.local.base import LocalServer

MAIN = "main"
LABS = "labs"
REPLICA_DELAY = "recovery_min_apply_delay_ms"
"""A replica's own setting: how long it holds each commit back before replaying it."""
"""The key in a server's state that lists the labs using it."""


def server_names(instances: Sequence[InstanceSpec]) -> dict[str, str]:
    """Which server each instance runs on: a home's one server of its kind (`main`), or
    a server of its own for a replica or a second instance of the same kind."""
    out, taken = {}, set()
    for instance in instances:
        if instance.replica_of is None and instance.kind not in taken:
            out[instance.name] = MAIN
            taken.add(instance.kind)
        else:
            out[instance.name] = instance.name
    return out


class LocalProvider(Provider):
    """Private servers from binaries on this machine, under SDTUTOR_HOME."""

    name = "local"
    description = "private servers started from binaries installed on this machine"
    services = frozenset({"postgres", "redis", "rabbitmq"})
    replicas = True
    restarts_servers = True

    @classmethod
    def availability(cls, kinds: Collection[str] | None = None) -> Availability:
        from sdtutor.services.local import SERVERS

        found = {
            kind: server.find_binaries()
            for kind, server in SERVERS.items()
            if kinds is None or kind in kinds
        }
        usable = tuple(kind for kind, a in found.items() if a.ok)
        detail = "; ".join(a.detail for a in found.values())
        fix = " ".join(a.fix for a in found.values() if not a.ok and a.fix)
        return Availability(bool(usable), detail, fix, services=usable)

    @staticmethod
    def _server(kind: str, name: str) -> LocalServer:
        from sdtutor.services.local import server_class

        return server_class(kind)(name)

    def start(
        self, lab: str, instances: Sequence[InstanceSpec], progress: Progress = no_progress
    ) -> dict[str, Endpoint]:
        missing = [i.kind for i in instances if not self._server(i.kind, MAIN).find_binaries().ok]
        if missing:
            raise ProviderError(
                f"The local provider cannot start {', '.join(sorted(set(missing)))} here: "
                "its server binaries are not installed.",
                " ".join(self._server(k, MAIN).find_binaries().fix for k in set(missing))
                + " Or use --provider docker / external.",
            )
        names = server_names(instances)
        self._require_settings(instances, names)
        endpoints: dict[str, Endpoint] = {}
        started: list[LocalServer] = []
        try:
            # Primaries first: a replica copies from a running primary.
            for instance in sorted(instances, key=lambda i: i.replica_of is not None):
                server = self._server(instance.kind, names[instance.name])
                with server.locked():
                    was_running = server.running()
                    if instance.replica_of:
                        from sdtutor.services.local.postgres import LocalPostgres

                        primary = self._server(instance.kind, names[instance.replica_of])
                        assert isinstance(server, LocalPostgres)
                        assert isinstance(primary, LocalPostgres)
                        delay = int(instance.settings.get(REPLICA_DELAY, "0"))
                        url = server.ensure_replica(primary, delay, progress)
                    else:
                        url = server.ensure_running(progress)  # it reports its own steps
                    if not was_running:
                        started.append(server)
                    labs = set(server.state().get(LABS, [])) | {lab}
                    server.update_state(**{LABS: sorted(labs)})
                handle = {**server.extra(), "local": server.name}
                endpoints[instance.name] = Endpoint(instance.kind, url, handle)
        except BaseException:
            self._release(lab, endpoints)
            for server in started:
                with contextlib.suppress(Exception):
                    if not server.state().get(LABS):
                        server.stop()
            raise
        return endpoints

    def _require_settings(self, instances: Sequence[InstanceSpec], names: dict[str, str]) -> None:
        """Refuse, before anything starts, a lab whose server settings this home's servers
        do not run with: they are shared by its labs, so no lab changes them (a replica's
        apply delay is the replica's own)."""
        for instance in instances:
            wanted = {
                k: v
                for k, v in instance.settings.items()
                if not (instance.replica_of and k == REPLICA_DELAY)
            }
            unmet = self._server(instance.kind, names[instance.name]).unmet_settings(wanted)
            if unmet:
                raise ProviderError(
                    f"The local provider's servers do not run with what '{instance.name}' "
                    f"needs: {'; '.join(unmet)}.",
                    "Use --provider docker, or ask the lab's author: local servers run "
                    "with fixed settings.",
                )

    def stop(self, lab: str, endpoints: dict[str, Endpoint]) -> None:
        """Forget `lab` on each of its servers; stop a server no other lab uses."""
        self._release(lab, endpoints, stop_unused=True)

    def _release(self, lab: str, endpoints: dict[str, Endpoint], stop_unused: bool = False) -> None:
        for endpoint in endpoints.values():
            name = str(endpoint.handle.get("local") or MAIN)
            server = self._server(endpoint.service, name)
            with server.locked():
                labs = set(server.state().get(LABS, [])) - {lab}
                if server.state():
                    server.update_state(**{LABS: sorted(labs)})
                if stop_unused and not labs and server.running():
                    server.stop()

    def stop_all(self) -> list[str]:
        """Destroy every server of this home: processes, data and all."""
        from sdtutor.services.local import existing

        stopped = []
        for server in existing():
            with server.locked():
                was = server.running()
                server.destroy()
            if was:
                stopped.append(f"local {server.label} ({server.name})")
        _remove_old_layout()
        return stopped


def _remove_old_layout() -> None:
    """Earlier versions kept a root-run PostgreSQL under /var/tmp/sdtutor-<digest>; stop
    it (as its owner) and remove its folder, after checking it is a real folder."""
    old = Path("/var/tmp") / f"sdtutor-{locations.home_digest()}"
    try:
        info = old.lstat()
    except FileNotFoundError:
        return
    import stat

    if not stat.S_ISDIR(info.st_mode) or os.geteuid() != 0:
        return
    pg_ctl = shutil.which("pg_ctl")
    for datadir in old.glob("postgres-*/data"):
        if pg_ctl and (datadir / "postmaster.pid").exists() and not datadir.is_symlink():
            owner = datadir.stat().st_uid
            subprocess.run(
                [pg_ctl, "stop", "-m", "fast", "-w", "-D", str(datadir)],
                user=owner,
                capture_output=True,
                timeout=60,
                check=False,
            )
    shutil.rmtree(old, ignore_errors=True)


__all__ = ["LocalProvider", "server_names"]
