"""Call your limiter.py by hand, the way one app server would, and see what Redis holds.

    python play.py allow alice 5 10            one call of allow(r, "alice", 5, 10, now)
    python play.py allow alice 5 10 7          seven calls at the same moment
    python play.py allow bob 5 10 5@-0.5 5@0.5
                                               five calls half a second before a window's
                                               edge (a multiple of 10 s since 1970), then
                                               five half a second after it
    python play.py bucket carol 10 2 12 3@1.5  twelve calls of take_token(r, "carol", 10, 2,
                                               now), then three 1.5 s later

Each group after the numbers is N calls: N alone makes them at now = time.time(); N@T
makes them T seconds after the next window's edge (for `bucket`, the next whole second);
T may be negative. Prints each answer with its headers (without "X-RateLimit-"), then
the keys under your prefix with their TTLs. The Redis URL and the key prefix come from
REDIS_URL and REDIS_KEY_PREFIX when they are set, else from `sdtutor lab info
rate-limiting`. You do not need to change this file.
"""

import json
import math
import os
import subprocess
import sys
import time


def lab_settings():
    """The lab's Redis URL and key prefix."""
    if os.environ.get("REDIS_URL") and os.environ.get("REDIS_KEY_PREFIX"):
        return os.environ["REDIS_URL"], os.environ["REDIS_KEY_PREFIX"]
    try:
        info = json.loads(
            subprocess.run(
                ["sdtutor", "lab", "info", "rate-limiting", "--json"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
    except (OSError, subprocess.CalledProcessError, ValueError) as exc:
        sys.exit(f"Cannot read the lab's settings ({exc}). Start it: sdtutor lab start rate-limiting")
    redis_info = info.get("services", {}).get("redis", {})
    prefix = redis_info.get("prefix") or redis_info.get("env", {}).get("REDIS_KEY_PREFIX")
    if not prefix:
        sys.exit("`sdtutor lab info rate-limiting --json` gives no key prefix; set REDIS_KEY_PREFIX.")
    return redis_info["url"], prefix


def main(argv):
    """Make the calls, print the answers and the keys."""
    if len(argv) < 4 or argv[0] not in ("allow", "bucket"):
        sys.exit(__doc__)
    what, key, a, b = argv[0], argv[1], int(argv[2]), float(argv[3])
    url, prefix = lab_settings()
    os.environ["REDIS_KEY_PREFIX"] = prefix  # before limiter.py reads it

    import redis

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import limiter

    r = redis.Redis.from_url(url, decode_responses=True)
    started = time.time()
    step = b if what == "allow" else 1
    edge = (math.floor(started / step) + 1) * step
    for group in argv[4:] or ["1"]:
        count, _, at = group.partition("@")
        now = edge + float(at) if at else started
        where = f"the window's edge {float(at):+g} s" if at else "time.time()"
        print(f"now = {now:.3f}  ({where})")
        for n in range(1, int(count) + 1):
            if what == "allow":
                allowed, headers = limiter.allow(r, key, a, b, now)
                shown = "  ".join(f"{k.replace('X-RateLimit-', '')} {v}" for k, v in headers.items())
                print(f"{n:4}  {'allowed' if allowed else 'refused'}  {shown}")
            else:
                went = limiter.take_token(r, key, a, b, now)
                print(f"{n:4}  {'allowed' if went else 'refused'}")
    keys = sorted(r.scan_iter(match=prefix + "*", count=500))
    print(f"\nkeys under {prefix}: {len(keys)}")
    for name in keys[:20]:
        ttl = r.ttl(name)
        print(f"   {name}  ({r.type(name)}, {'no expiry' if ttl == -1 else f'TTL {ttl} s'})")


if __name__ == "__main__":
    main(sys.argv[1:])
