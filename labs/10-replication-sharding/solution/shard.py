"""Task 2: decide which shard stores a tenant's key.

`shards` is the list of shard names in service, e.g. ["shard0", "shard1", "shard2",
"shard3"]; `tenant` is a customer ("acme") and `key` one of its records ("invoice-17").
Return one of `shards`. The same arguments must give the same shard every time, in
every process: the app calls this on many servers, and after a restart.

Rendezvous (highest random weight) hashing: every shard scores the record with a stable
hash, and the highest score wins. A new shard wins about 1/(n+1) of the records, taken
evenly from the others; nothing else moves. The record is tenant *and* key, so one big
tenant's records spread over every shard.
"""

import hashlib


def _score(shard, record):
    digest = hashlib.blake2b(f"{shard}\x00{record}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def shard_for(tenant, key, shards):
    """The shard (one of `shards`) that stores `key` of `tenant`."""
    record = f"{tenant}\x00{key}"
    return max(shards, key=lambda shard: _score(shard, record))
