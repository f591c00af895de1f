"""Calls the learner's code as an attacker and as the app would; runs in their process.

The checks run these functions through the runner, which puts this file into the
sandbox's copy of the workspace. Nothing here decides a verdict: the lookups are judged
by what PostgreSQL received and holds, the fetches by what the checker's own HTTP server
was asked for (the transport below is the only way out, and it goes there), signup and
tokens by the checker recomputing what a right answer is.
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import socket
from pathlib import Path
from typing import Any, NamedTuple

from sdtutor.lab.runner.harness import import_learner


def _learner(name: str) -> Any:
    """The learner's module `name`, imported afresh from beside this file in the sandbox."""
    return import_learner(Path(__file__).with_name(name))


def _error(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".strip().rstrip(":")


def _jsonable(value: Any) -> Any:
    """What the learner returned, as JSON (rows may be tuples, Row objects, dicts)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    try:
        return {str(k): _jsonable(v) for k, v in dict(value).items()}
    except (TypeError, ValueError):
        return repr(value)


# ------------------------------------------------------------------ lookups


def lookups(conn: Any, file: str, emails: list[str]) -> list[dict[str, Any]]:
    """find_user(conn, email) for each email; what it returned or raised."""
    module = _learner(file)
    out = []
    for email in emails:
        try:
            out.append({"email": email, "result": _jsonable(module.find_user(conn, email))})
        except Exception as exc:  # the learner's error, reported to the check
            out.append({"email": email, "error": _error(exc)})
    return out


# ------------------------------------------------------------------ fetches


class Response(NamedTuple):
    """What send() returns: the status, the Location header (or None), the body."""

    status: int
    location: str | None
    body: str


def _resolver(table: dict[str, list[str]]) -> Any:
    """A resolver as getaddrinfo behaves: numeric spellings inet_aton accepts (decimal,
    octal, hex, 127.1) are addresses already; names come from the checker's table."""

    def resolve(host: str) -> list[str]:
        if not isinstance(host, str) or not host:
            raise OSError("resolve() takes a host name")
        name = host.strip("[]").lower().rstrip(".")
        try:
            return [socket.inet_ntoa(socket.inet_aton(name))]
        except OSError:
            pass
        try:
            return [str(ipaddress.IPv6Address(name.split("%")[0]))]
        except ValueError:
            pass
        if name in table:
            return list(table[name])
        raise OSError(f"[Errno -2] Name or service not known: {host!r}")

    return resolve


def _transport(port: int, case: int) -> Any:
    """send(ip, port, host, path): one GET to that address. The checker's server plays
    every address; it is told which one was meant, so it can count what got through."""

    def send(ip: str, target_port: int, host: str, path: str) -> Response:
        try:
            ipaddress.ip_address(str(ip).strip("[]"))
        except ValueError:
            raise ValueError(f"send() takes an IP address (one you checked), not {ip!r}") from None
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request(
                "GET",
                path or "/",
                headers={
                    "Host": str(host),
                    "X-Sdtutor-Target": str(ip).strip("[]"),
                    "X-Sdtutor-Port": str(target_port),
                    "X-Sdtutor-Case": str(case),
                },
            )
            reply = conn.getresponse()
            body = reply.read().decode("utf-8", "replace")
            return Response(reply.status, reply.getheader("Location"), body)
        finally:
            conn.close()

    return send


def fetches(file: str, urls: list[str], table: dict[str, list[str]], port: int) -> list[dict]:
    """fetch_preview(url, resolve, send) for each URL; what it returned or raised."""
    module = _learner(file)
    blocked = getattr(module, "Blocked", None)
    out: list[dict[str, Any]] = []
    for case, url in enumerate(urls):
        entry: dict[str, Any] = {"url": url}
        try:
            body = module.fetch_preview(url, _resolver(table), _transport(port, case))
            entry["result"] = body if isinstance(body, str) else repr(body)
        except Exception as exc:  # the learner's refusal, or a crash
            isblocked = isinstance(blocked, type) and isinstance(exc, blocked)
            entry["blocked" if isblocked else "error"] = _error(exc)
        out.append(entry)
    return out


# ------------------------------------------------------------------ signup


def signups(file: str, bodies: list[Any]) -> list[dict[str, Any]]:
    """validate_signup(body) for each body: returned, refused with Invalid, or crashed."""
    module = _learner(file)
    invalid = getattr(module, "Invalid", None)
    out: list[dict[str, Any]] = []
    for body in bodies:
        try:
            out.append({"result": _jsonable(module.validate_signup(body))})
        except Exception as exc:  # Invalid is the answer; anything else is a crash
            if isinstance(invalid, type) and isinstance(exc, invalid):
                out.append({"invalid": _error(exc)})
            else:
                out.append({"error": _error(exc)})
    return out


# ------------------------------------------------------------------ tokens


def tokens(file: str, secrets: list[str | None], forged: list[str]) -> list[dict[str, Any]]:
    """With APP_SECRET set to each of `secrets` (None: unset), import tokens.py afresh,
    sign(42) and verify() its own token and each forged one."""
    out: list[dict[str, Any]] = []
    for secret in secrets:
        if secret is None:
            os.environ.pop("APP_SECRET", None)
        else:
            os.environ["APP_SECRET"] = secret
        entry: dict[str, Any] = {"secret": secret}
        try:
            module = _learner(file)
            token = module.sign(42)
            entry["token"] = token if isinstance(token, str) else repr(token)
            entry["verify_own"] = _jsonable(module.verify(token))
            entry["verify_forged"] = [_jsonable(module.verify(f)) for f in forged]
        except Exception as exc:  # unset: refusing is right; set: a bug
            entry["error"] = _error(exc)
        out.append(entry)
    return out
