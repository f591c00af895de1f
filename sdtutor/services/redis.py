"""The Redis service kind: a key prefix per lab, and an ACL user limited to it.

The lab's keys live under `sdtutor:<home>:<slug>:`; where the server allows `ACL
SETUSER` (Redis 6 and later, from an admin login) the learner gets a user that can touch
only those keys and channels, and no dangerous command. The marker is a key outside that
prefix, so learner code cannot delete it. Redis keeps no template: a reset deletes the
lab's keys and runs the seed again (a seed is a few commands, not a data load).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from sdtutor.errors import LabError, ProviderError
from sdtutor.providers.base import Progress, no_progress
from sdtutor.providers.external import redact
from sdtutor.services.base import Access, ServiceKind, Target, refuse_foreign, url_with_login
from sdtutor.services.names import Names

PREFIX_ENV = "REDIS_KEY_PREFIX"
SERVER_WIDE = (
    "-function|flush", "-function|delete", "-function|restore", "-function|kill",
    "-script|flush", "-script|kill", "-randomkey",
)  # fmt: skip
"""Commands outside @dangerous that a lab's user may not run: they reach past its keys."""


def client(url: str, **kwargs: Any) -> Any:
    """A redis-py client with timeouts, strings decoded."""
    import redis  # costly import: only where a lab uses Redis

    kwargs.setdefault("decode_responses", True)
    kwargs.setdefault("socket_timeout", 10)
    kwargs.setdefault("socket_connect_timeout", 5)
    return redis.Redis.from_url(url, **kwargs)


def _admin(url: str) -> Any:
    import redis

    conn = client(url)
    try:
        conn.ping()
    except redis.RedisError as exc:
        raise ProviderError(
            f"Cannot reach Redis at {redact(url)}: {exc}",
            "Start the server (or the lab: `sdtutor lab start TOPIC`), or fix the URL "
            "(SDTUTOR_REDIS_URL for the external provider). `sdtutor doctor` helps.",
        ) from None
    return conn


def delete_prefix(conn: Any, prefix: str) -> int:
    """Delete every key under `prefix` (SCAN, never KEYS); returns how many."""
    pattern = _glob_escape(prefix) + "*"
    deleted = 0
    batch: list[str] = []
    for key in conn.scan_iter(match=pattern, count=500):
        batch.append(key)
        if len(batch) >= 500:
            deleted += conn.unlink(*batch)
            batch = []
    if batch:
        deleted += conn.unlink(*batch)
    return deleted


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def seed_commands(path: Path, prefix: str) -> list[tuple[int, list[str]]]:
    """A seed file's commands: one per line, shell-quoted, `{prefix}` for the lab's prefix."""
    commands = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            words = shlex.split(stripped)
        except ValueError as exc:
            raise LabError(f"{path}:{number}: {exc}", "Quote the command's words.") from None
        commands.append((number, [w.replace("{prefix}", prefix) for w in words]))
    return commands


class RedisKind(ServiceKind):
    """Redis: keys under the lab's prefix, reached through an ACL user limited to them."""

    name = "redis"
    title = "Redis"
    url_variable = "SDTUTOR_REDIS_URL"
    learner_env = "REDIS_URL"
    shell_blurb = "a Redis prompt on the lab's keys"
    prefix_env = PREFIX_ENV

    def probe(self, url: str) -> bool:
        """Whether PING answers; never raises."""
        try:
            conn = client(url, socket_timeout=2, socket_connect_timeout=2)
            try:
                return bool(conn.ping())
            finally:
                conn.close()
        except Exception:
            return False

    def provision(self, target: Target, fresh: bool, progress: Progress = no_progress) -> Access:
        """The lab's user and prefix; on a fresh start, its keys deleted and seeded."""
        import redis

        names = target.names
        conn = _admin(target.admin_url)
        try:
            marker = conn.get(names.marker_key)
            refuse_foreign(names, f"Redis key {names.marker_key}", marker)
            password = str(target.handle.get("password") or "") or _new_password()
            note = ""
            try:
                conn.execute_command(*self._acl_rule(names, password))
                url = url_with_login(target.admin_url, names.role, password)
            except redis.ResponseError as exc:
                # An old server, or an admin login without ACL rights: share the login.
                url = target.admin_url
                note = (
                    f"This Redis would not make a user for the lab ({exc}); your code uses "
                    f"the server's own login, so keep to keys under {names.key_prefix}."
                )
            conn.set(names.marker_key, names.marker())
            if fresh or marker is None:
                delete_prefix(conn, names.key_prefix)
                if target.setup is not None:
                    progress(f"Seeding Redis from {target.setup.name}", None)
                    self._seed(conn, target.setup, names.key_prefix)
        finally:
            conn.close()
        return Access(url, names.key_prefix, {PREFIX_ENV: names.key_prefix}, note)

    @staticmethod
    def _acl_rule(names: Names, password: str) -> list[str]:
        """Only the lab's keys and channels, no dangerous command, and none of the
        commands outside @dangerous that act on the whole server: flushing or deleting
        the functions and scripts other learners loaded, killing their running script,
        or fishing other labs' key names out with RANDOMKEY."""
        prefix = _glob_escape(names.key_prefix)
        return [
            "ACL", "SETUSER", names.role, "reset", "on", f">{password}",
            f"~{prefix}*", f"&{prefix}*", "+@all", "-@dangerous", *SERVER_WIDE,
        ]  # fmt: skip

    @staticmethod
    def _seed(conn: Any, path: Path, prefix: str) -> None:
        import redis

        for number, words in seed_commands(path, prefix):
            try:
                conn.execute_command(*words)
            except redis.ResponseError as exc:
                raise LabError(f"{path}:{number}: Redis refused {words[0]}: {exc}") from None

    def teardown(self, target: Target, purge: bool = False) -> None:
        """Delete the lab's keys and its user, after checking the marker."""
        import redis

        names = target.names
        conn = _admin(target.admin_url)
        try:
            marker = conn.get(names.marker_key)
            if marker is None:
                return
            refuse_foreign(names, f"Redis key {names.marker_key}", marker)
            delete_prefix(conn, names.key_prefix)
            # No ACL on this server: there was no user to delete.
            with contextlib.suppress(redis.ResponseError):
                conn.execute_command("ACL", "DELUSER", names.role)
            conn.delete(names.marker_key)
        finally:
            conn.close()

    def shell(
        self, access: Access, prefer_native: bool = True, target: Target | None = None
    ) -> int:
        """redis-cli (the password in REDISCLI_AUTH, not argv), else a built-in prompt."""
        cli = shutil.which("redis-cli")
        if prefer_native and cli:
            parts = urlsplit(access.url)
            env = dict(os.environ)
            args = [cli, "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 6379)]
            if parts.username:
                args += ["--user", unquote(parts.username)]
            if parts.password:
                env["REDISCLI_AUTH"] = unquote(parts.password)
            db = parts.path.strip("/")
            if db:
                args += ["-n", db]
            print(f"Your keys live under {access.prefix} (type QUIT to leave).")
            return subprocess.run(args, env=env).returncode
        return builtin_prompt(access)


def _new_password() -> str:
    import secrets

    return secrets.token_urlsafe(18)


def builtin_prompt(access: Access) -> int:
    """A small Redis prompt: one command per line, quoted like a shell, with line editing
    and a history of its own (Up brings back a command from this or an earlier session)."""
    import redis

    from sdtutor.services.prompt import commands

    # The server's own replies, as redis-cli shows them: RESP2 (redis-py 8 speaks RESP3,
    # whose maps and sets come back as dicts and sets), and no response callbacks (they
    # turn OK into True and a hash into a dict).
    conn = client(access.url, protocol=2)
    conn.response_callbacks.clear()
    print(f"Redis, keys under {access.prefix}. One command per line; QUIT or Ctrl-D to leave.")
    for words in commands("redis> ", history="redis"):
        try:
            print(_format(conn.execute_command(*words)))
        except redis.RedisError as exc:
            print(f"(error) {exc}")
    return 0


STATUS_REPLIES = ("OK", "PONG", "QUEUED")
"""Status replies, shown bare as redis-cli does (redis-py cannot tell them from strings)."""


def _format(value: Any, depth: int = 0) -> str:
    if value is None:
        return "(nil)"
    if isinstance(value, str) and value in STATUS_REPLIES:
        return str(value)
    if isinstance(value, list):
        if not value:
            return "(empty array)"
        pad = "   " * depth
        return "\n".join(f"{pad}{i}) {_format(v, depth + 1)}" for i, v in enumerate(value, start=1))
    if isinstance(value, int):
        return f"(integer) {value}"
    return f'"{value}"' if isinstance(value, str) else str(value)


__all__ = ["PREFIX_ENV", "RedisKind", "client", "delete_prefix", "seed_commands"]
