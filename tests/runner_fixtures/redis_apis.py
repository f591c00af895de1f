"""Redis through a pipeline and a MULTI/EXEC transaction."""

import os


def cache_work(r):
    prefix = os.environ["REDIS_KEY_PREFIX"]
    r.set(prefix + "plain", "1", ex=30)
    with r.pipeline(transaction=False) as pipe:
        for i in range(4):
            pipe.get(prefix + f"k{i}")
        pipe.execute()
    with r.pipeline(transaction=True) as pipe:
        pipe.set(prefix + "tx", "2")
        pipe.expire(prefix + "tx", 30)
        pipe.execute()
    r.delete(prefix + "plain", prefix + "tx")
    return "done"
