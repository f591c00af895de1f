"""The RabbitMQ service kind: a vhost and user per lab where the server allows it.

On a private node (local provider) sdtutor makes them with `rabbitmqctl`; on a container
with the management plugin (docker provider), with its HTTP API. Over plain AMQP nobody
can make a vhost or a user (the machine's shared broker has no management plugin), so
there the lab shares the URL's vhost and keeps its exchanges and queues under the prefix
`sdtutor.<home>.<slug>.`; the names a lab uses are listed in lab.yaml (`resources`), since
AMQP cannot list what exists. The marker is the vhost's description, or a marker
exchange under the prefix.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from sdtutor.errors import ProviderError
from sdtutor.providers.base import Progress, no_progress
from sdtutor.providers.external import redact
from sdtutor.services.base import Access, ServiceKind, Target, refuse_foreign, url_with_login
from sdtutor.services.names import Names

PREFIX_ENV = "AMQP_NAME_PREFIX"
MARKER_EXCHANGE = "sdtutor-marker"


def connect(url: str, timeout: float = 5.0) -> Any:
    """A pika BlockingConnection with timeouts; ProviderError when the broker is not there."""
    import pika
    import pika.exceptions

    params = pika.URLParameters(url)
    params.connection_attempts = 1
    params.socket_timeout = timeout
    params.stack_timeout = timeout * 2
    params.blocked_connection_timeout = timeout * 2
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    try:
        return pika.BlockingConnection(params)
    except (pika.exceptions.AMQPError, OSError) as exc:
        raise ProviderError(
            f"Cannot reach RabbitMQ at {redact(url)}: {exc!r}",
            "Start the broker (or the lab: `sdtutor lab start TOPIC`), or fix the URL "
            "(SDTUTOR_AMQP_URL for the external provider). `sdtutor doctor` helps.",
        ) from None


def with_vhost(url: str, vhost: str) -> str:
    """The same broker URL on another vhost."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(vhost, safe="")))


class _Manager:
    """What can make vhosts and users: rabbitmqctl on a private node, or the HTTP API."""

    def vhost_description(self, vhost: str) -> str | None:
        raise NotImplementedError

    def add_namespace(self, names: Names, password: str) -> None:
        raise NotImplementedError

    def delete_namespace(self, names: Names) -> None:
        raise NotImplementedError

    def set_password(self, names: Names, password: str) -> None:
        """Give the lab's existing user this password (made again if it went missing)."""
        raise NotImplementedError

    def listing(self, vhost: str) -> dict[str, list[dict[str, Any]]]:
        """Exchanges, queues and bindings of a vhost."""
        raise NotImplementedError


class _CtlManager(_Manager):
    """rabbitmqctl against the local provider's private node."""

    def __init__(self, server: Any) -> None:
        self.server = server

    def _json(self, *args: str) -> list[dict[str, Any]]:
        out = self.server.ctl(*args, "--formatter", "json", "--quiet")
        data = json.loads(out or "[]")
        return data if isinstance(data, list) else []

    def vhost_description(self, vhost: str) -> str | None:
        for row in self._json("list_vhosts", "name", "description"):
            if row.get("name") == vhost:
                return str(row.get("description") or "")
        return None

    def add_namespace(self, names: Names, password: str) -> None:
        if self.vhost_description(names.vhost) is None:
            self.server.ctl("add_vhost", names.vhost, "--description", names.marker())
        users = {row.get("user") for row in self._json("list_users")}
        if names.role in users:
            self.server.ctl("delete_user", names.role)
        self.server.ctl("add_user", names.role, stdin=password + "\n")
        self.server.ctl("set_permissions", "-p", names.vhost, names.role, ".*", ".*", ".*")

    def delete_namespace(self, names: Names) -> None:
        if self.vhost_description(names.vhost) is not None:
            self.server.ctl("delete_vhost", names.vhost)
        if names.role in {row.get("user") for row in self._json("list_users")}:
            self.server.ctl("delete_user", names.role)

    def set_password(self, names: Names, password: str) -> None:
        # Each rabbitmqctl call starts an Erlang VM (about a second): one call, not four.
        try:
            self.server.ctl("change_password", names.role, stdin=password + "\n")
        except ProviderError:
            self.server.ctl("add_user", names.role, stdin=password + "\n")
            self.server.ctl("set_permissions", "-p", names.vhost, names.role, ".*", ".*", ".*")

    def listing(self, vhost: str) -> dict[str, list[dict[str, Any]]]:
        return {
            "exchanges": self._json("list_exchanges", "-p", vhost, "name", "type", "durable"),
            "queues": self._json(
                "list_queues",
                "-p",
                vhost,
                "name",
                "durable",
                "messages",
                "consumers",
                "arguments",
            ),
            "bindings": self._json(
                "list_bindings", "-p", vhost, "source_name", "destination_name", "routing_key"
            ),
        }


class _HttpManager(_Manager):
    """The management plugin's HTTP API (the docker provider's image has it)."""

    def __init__(self, base: str, admin_url: str) -> None:
        parts = urlsplit(admin_url)
        self.base = base.rstrip("/") + "/api"
        token = f"{parts.username or ''}:{parts.password or ''}".encode()
        self.auth = "Basic " + base64.b64encode(token).decode()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Authorization", self.auth)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and method in ("GET", "DELETE"):
                return None
            raise ProviderError(
                f"RabbitMQ's management API refused {method} {path}: {exc}"
            ) from None
        except OSError as exc:
            raise ProviderError(f"RabbitMQ's management API did not answer: {exc}") from None
        return json.loads(text) if text else None

    def vhost_description(self, vhost: str) -> str | None:
        found = self._call("GET", f"/vhosts/{quote(vhost, safe='')}")
        return None if found is None else str(found.get("description") or "")

    def add_namespace(self, names: Names, password: str) -> None:
        vhost = quote(names.vhost, safe="")
        self._call("PUT", f"/vhosts/{vhost}", {"description": names.marker()})
        self._call(
            "PUT", f"/users/{quote(names.role, safe='')}", {"password": password, "tags": ""}
        )
        self._call(
            "PUT",
            f"/permissions/{vhost}/{quote(names.role, safe='')}",
            {"configure": ".*", "write": ".*", "read": ".*"},
        )

    def delete_namespace(self, names: Names) -> None:
        self._call("DELETE", f"/vhosts/{quote(names.vhost, safe='')}")
        self._call("DELETE", f"/users/{quote(names.role, safe='')}")

    def set_password(self, names: Names, password: str) -> None:
        vhost, user = quote(names.vhost, safe=""), quote(names.role, safe="")
        self._call("PUT", f"/users/{user}", {"password": password, "tags": ""})
        self._call(
            "PUT", f"/permissions/{vhost}/{user}", {"configure": ".*", "write": ".*", "read": ".*"}
        )

    def listing(self, vhost: str) -> dict[str, list[dict[str, Any]]]:
        v = quote(vhost, safe="")
        return {
            "exchanges": self._call("GET", f"/exchanges/{v}") or [],
            "queues": self._call("GET", f"/queues/{v}") or [],
            "bindings": self._call("GET", f"/bindings/{v}") or [],
        }


def manager(target: Target) -> _Manager | None:
    """How this server's vhosts and users can be made, if they can."""
    if target.handle.get("local"):
        from sdtutor.services.local.rabbitmq import LocalRabbitMQ

        return _CtlManager(LocalRabbitMQ(str(target.handle["local"])))
    if target.handle.get("management_url"):
        return _HttpManager(str(target.handle["management_url"]), target.admin_url)
    return None


class RabbitMQKind(ServiceKind):
    """RabbitMQ: a vhost and user per lab, or names under a prefix on a shared vhost."""

    name = "rabbitmq"
    title = "RabbitMQ"
    url_variable = "SDTUTOR_AMQP_URL"
    learner_env = "AMQP_URL"
    shell_blurb = "the lab's exchanges, queues and messages"
    prefix_env = PREFIX_ENV

    def probe(self, url: str) -> bool:
        """Whether the broker accepts an AMQP connection; never raises."""
        try:
            connect(url, timeout=2).close()
            return True
        except Exception:
            return False

    def provision(self, target: Target, fresh: bool, progress: Progress = no_progress) -> Access:
        """A vhost and user (private broker), else the prefix on the URL's vhost."""
        names = target.names
        mgr = manager(target)
        if mgr is not None:
            description = mgr.vhost_description(names.vhost)
            refuse_foreign(names, f"RabbitMQ vhost {names.vhost}", description)
            password = str(target.handle.get("password") or "") or secrets.token_urlsafe(18)
            url = with_vhost(url_with_login(target.admin_url, names.role, password), names.vhost)
            listed = target.lab.resources.get(target.instance)
            if description is not None and fresh and not listed:
                mgr.delete_namespace(names)
                description = None
            if description is None:
                progress(f"Creating the RabbitMQ vhost {names.vhost}", None)
                mgr.add_namespace(names, password)
            else:
                # The vhost stays; its listed exchanges and queues go (fewer broker calls).
                mgr.set_password(names, password)
                if fresh:
                    conn = connect(url)
                    try:
                        self._delete_resources(conn, target, prefix="")
                    finally:
                        conn.close()
            return Access(url, "", {PREFIX_ENV: ""})
        conn = connect(target.admin_url)
        try:
            if fresh:
                self._delete_resources(conn, target)
            channel = conn.channel()
            channel.exchange_declare(
                names.amqp_prefix + MARKER_EXCHANGE, "fanout", durable=True, internal=True
            )
        finally:
            conn.close()
        note = (
            "This broker cannot make a vhost or a user over AMQP, so the lab shares its login "
            f"and vhost: keep every exchange and queue under {names.amqp_prefix}."
        )
        return Access(target.admin_url, names.amqp_prefix, {PREFIX_ENV: names.amqp_prefix}, note)

    @staticmethod
    def _delete_resources(conn: Any, target: Target, prefix: str | None = None) -> None:
        """Delete the exchanges and queues lab.yaml lists, under this lab's prefix (none
        in a vhost of the lab's own)."""
        import pika.exceptions

        listed = target.lab.resources.get(target.instance, {})
        prefix = target.names.amqp_prefix if prefix is None else prefix
        for what in ("queues", "exchanges"):
            for name in listed.get(what, ()):
                channel = conn.channel()
                try:
                    if what == "queues":
                        channel.queue_delete(prefix + name)
                    else:
                        channel.exchange_delete(prefix + name)
                    channel.close()
                except pika.exceptions.ChannelClosed:
                    pass  # it was not there

    def teardown(self, target: Target, purge: bool = False) -> None:
        """Delete the lab's vhost and user, or its listed names and marker exchange."""
        import pika.exceptions

        names = target.names
        mgr = manager(target)
        if mgr is not None:
            description = mgr.vhost_description(names.vhost)
            if description is None:
                return
            refuse_foreign(names, f"RabbitMQ vhost {names.vhost}", description)
            mgr.delete_namespace(names)
            return
        conn = connect(target.admin_url)
        try:
            marker = names.amqp_prefix + MARKER_EXCHANGE
            try:
                conn.channel().exchange_declare(marker, passive=True)
            except pika.exceptions.ChannelClosed:
                return  # never provisioned here, or already removed
            self._delete_resources(conn, target)
            conn.channel().exchange_delete(marker)
        finally:
            conn.close()

    def shell(
        self, access: Access, prefer_native: bool = True, target: Target | None = None
    ) -> int:
        """A prompt that shows exchanges, queues, bindings and messages."""
        from sdtutor.services.amqpshell import prompt

        mgr = manager(target) if target is not None else None
        if mgr is not None and target is not None:
            vhost = target.names.vhost
            return prompt(access, lambda: mgr.listing(vhost))
        known = (
            list(target.lab.resources.get(target.instance, {}).get("queues", ())) if target else []
        )
        return prompt(access, None, known)


__all__ = ["MARKER_EXCHANGE", "PREFIX_ENV", "RabbitMQKind", "connect", "manager", "with_vhost"]
