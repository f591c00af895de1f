"""Shards for the replication lab: rendezvous hashing on the tenant alone."""

import hashlib


def _score(shard, tenant):
    return hashlib.sha256(f"{shard}:{tenant}".encode()).digest()


def shard_for(tenant, key, shards):
    return max(shards, key=lambda shard: _score(shard, tenant))
