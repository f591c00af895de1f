"""Shards for the replication lab: a consistent-hash ring with one point per shard."""

import bisect
import hashlib


def _h(text):
    return int.from_bytes(hashlib.md5(text.encode()).digest()[:8], "big")


def shard_for(tenant, key, shards):
    ring = sorted((_h(shard), shard) for shard in shards)
    points = [point for point, _ in ring]
    i = bisect.bisect(points, _h(f"{tenant}/{key}")) % len(ring)
    return ring[i][1]
