"""Shards for the replication lab: rendezvous hashing with Python's built-in hash()."""


def shard_for(tenant, key, shards):
    return max(shards, key=lambda shard: hash(f"{shard}/{tenant}/{key}"))
