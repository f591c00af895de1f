"""A consistent-hash ring: maps each key (a user, a cache key) to one node.

TODO: this is not a ring yet. It takes hash(key) modulo the number of nodes.
"""

from __future__ import annotations


class HashRing:
    """Maps keys to nodes; the same nodes must give the same mapping in every process."""

    def __init__(self, nodes: list[str]) -> None:
        self.nodes = list(nodes)

    def add(self, node: str) -> None:
        """Add `node`: only about 1/(n+1) of the keys should move, all onto it."""
        self.nodes.append(node)

    def remove(self, node: str) -> None:
        """Remove `node`: only its own keys should move."""
        self.nodes.remove(node)

    def node_for(self, key: str) -> str:
        """The node that owns `key`."""
        return self.nodes[hash(key) % len(self.nodes)]
