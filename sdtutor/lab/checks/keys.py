"""Redis evidence: the keys under the lab's prefix, their types and their TTLs."""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from sdtutor.lab.checks.outcome import Fail
from sdtutor.lab.results import Evidence

_GLOB = re.compile(r"([\\*?\[\]])")


def escape_glob(text: str) -> str:
    """Text matched literally by a Redis MATCH / KEYS pattern."""
    return _GLOB.sub(r"\\\1", text)


NO_EXPIRY = -1  # what Redis's TTL says of a key that never expires


class KeyInfo(NamedTuple):
    """One key: its full name, its Redis type, and seconds to live as TTL says (-1: never)."""

    key: str
    type: str
    ttl: int

    @property
    def expires(self) -> bool:
        """Whether the key has a time to live."""
        return self.ttl != NO_EXPIRY


class Keys(list[KeyInfo]):
    """The keys a pattern matched under the lab's prefix: a list of (key, type, ttl)."""

    def __init__(self, items: list[KeyInfo], pattern: str = "") -> None:
        super().__init__(items)
        self.pattern = pattern  # the full pattern, prefix included

    def without_ttl(self) -> list[KeyInfo]:
        """The keys that never expire."""
        return [k for k in self if not k.expires]

    def evidence(self, title: str | None = None, first: list[KeyInfo] | None = None) -> Evidence:
        """The keys as a table (key, type, TTL); `first` are listed at the top."""
        shown = list(first or [])
        shown += [k for k in self if k not in shown]
        rows = [(k.key, k.type, f"{k.ttl} s" if k.expires else "never expires") for k in shown[:25]]
        if len(shown) > 25:
            rows.append((f"... and {len(shown) - 25} more", "", ""))
        return Evidence(
            title or f"keys matching {self.pattern} ({len(self)})",
            "table",
            (("key", "type", "ttl"), rows),
        )

    def must_exist(self, why: str) -> Keys:
        """Fail when the pattern matched no key."""
        if not self:
            raise Fail(why, self.evidence())
        return self

    def must_all_expire(self, why: str, between: tuple[float, float] | None = None) -> Keys:
        """Fail when a key never expires, or (with `between`) its TTL is out of range."""
        low, high = between if between else (0.0, float("inf"))
        bad = [k for k in self if not k.expires or not low <= k.ttl <= high]
        if bad:
            raise Fail(why, self.evidence(first=bad))
        return self


def scan_keys(client: Any, pattern: str, limit: int = 10_000) -> list[KeyInfo]:
    """SCAN for a full pattern, then TYPE and PTTL of each key in one pipeline."""
    names: list[str] = []
    for name in client.scan_iter(match=pattern, count=1000):
        names.append(name)
        if len(names) >= limit:
            break
    names.sort()
    if not names:
        return []
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.type(name)
        pipe.pttl(name)
    # SCAN is not limited by ACLs: keys this user may not read are skipped, not an error.
    replies = pipe.execute(raise_on_error=False)
    out = []
    for i, name in enumerate(names):
        kind, pttl = replies[2 * i], replies[2 * i + 1]
        if isinstance(kind, Exception) or isinstance(pttl, Exception):
            continue
        if kind == "none" or int(pttl) == -2:  # expired or deleted since the SCAN
            continue
        # Rounded as Redis's TTL rounds: a key with 1.6 s left has a TTL of 2.
        ttl = NO_EXPIRY if int(pttl) < 0 else (int(pttl) + 500) // 1000
        out.append(KeyInfo(name, str(kind), ttl))
    return out


__all__ = ["NO_EXPIRY", "KeyInfo", "Keys", "escape_glob", "scan_keys"]
