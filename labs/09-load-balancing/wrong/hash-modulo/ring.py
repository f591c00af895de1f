"""Keys to nodes by a stable hash modulo the number of nodes."""

from __future__ import annotations

import hashlib


class HashRing:
    def __init__(self, nodes: list[str]) -> None:
        self.nodes = list(nodes)

    def add(self, node: str) -> None:
        self.nodes.append(node)

    def remove(self, node: str) -> None:
        self.nodes.remove(node)

    def node_for(self, key: str) -> str:
        digest = int.from_bytes(hashlib.md5(key.encode()).digest()[:8], "big")
        return self.nodes[digest % len(self.nodes)]
