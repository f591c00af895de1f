"""A consistent-hash ring: each key belongs to the first node point clockwise from it.

Every node is placed on the ring at many points (virtual nodes), so that the arcs, and
the keys they hold, come out nearly equal. Adding a node takes over only the arcs just
before its own points; removing one hands only its keys to the next points along.
"""

from __future__ import annotations

import bisect
import hashlib

VNODES = 160  # points per node


def _point(text: str) -> int:
    """A position on the ring: the same in every process (unlike hash())."""
    return int.from_bytes(hashlib.md5(text.encode()).digest()[:8], "big")


class HashRing:
    """Maps keys to nodes; the same nodes give the same mapping in every process."""

    def __init__(self, nodes: list[str], vnodes: int = VNODES) -> None:
        self.vnodes = vnodes
        self._points: list[int] = []
        self._owners: dict[int, str] = {}
        for node in nodes:
            self.add(node)

    def add(self, node: str) -> None:
        """Put `node` on the ring at its virtual points."""
        for i in range(self.vnodes):
            point = _point(f"{node}#{i}")
            if point not in self._owners:
                bisect.insort(self._points, point)
                self._owners[point] = node

    def remove(self, node: str) -> None:
        """Take `node`'s points off the ring; its keys go to the next points along."""
        self._points = [p for p in self._points if self._owners[p] != node]
        self._owners = {p: n for p, n in self._owners.items() if n != node}

    def node_for(self, key: str) -> str:
        """The node that owns `key`: the first point at or after the key's position."""
        if not self._points:
            raise LookupError("the ring has no nodes")
        i = bisect.bisect_left(self._points, _point(key))
        return self._owners[self._points[i % len(self._points)]]
