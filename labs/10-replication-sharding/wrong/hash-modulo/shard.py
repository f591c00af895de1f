"""Shards for the replication lab: a stable hash of tenant and key, modulo the count."""

import hashlib


def shard_for(tenant, key, shards):
    digest = hashlib.md5(f"{tenant}/{key}".encode()).digest()
    return shards[int.from_bytes(digest[:8], "big") % len(shards)]
