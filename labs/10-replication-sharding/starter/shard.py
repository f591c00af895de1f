"""Task 2: decide which shard stores a tenant's key.

`shards` is the list of shard names in service, e.g. ["shard0", "shard1", "shard2",
"shard3"]; `tenant` is a customer ("acme") and `key` one of its records ("invoice-17").
Return one of `shards`. The same arguments must give the same shard every time, in
every process: the app calls this on many servers, and after a restart.

This version keeps each tenant on one shard, by a hash of its name modulo the number of
shards. The spread looks even, until one tenant is much bigger than the rest, or a fifth
shard joins: README.md says what happens then.
"""

import zlib


def shard_for(tenant, key, shards):
    """The shard (one of `shards`) that stores `key` of `tenant`."""
    return shards[zlib.crc32(tenant.encode()) % len(shards)]
