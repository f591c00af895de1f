"""Call your cache.py by hand, one call per run, the way the checker does.

    python play.py get 42
    python play.py get 999999                 (no such product)
    python play.py update 42 price_cents=1299 stock=7

Prints what the call returned, the statements that reached PostgreSQL, and the keys under
your prefix with their TTLs. The URLs and the key prefix come from DATABASE_URL,
REDIS_URL and REDIS_KEY_PREFIX when they are set, else from `sdtutor lab info caching`.
You do not need to change this file.
"""

import json
import os
import subprocess
import sys


def lab_settings():
    """The lab's PostgreSQL URL, Redis URL and key prefix."""
    wanted = ("DATABASE_URL", "REDIS_URL", "REDIS_KEY_PREFIX")
    if all(os.environ.get(name) for name in wanted):
        return tuple(os.environ[name] for name in wanted)
    try:
        info = json.loads(
            subprocess.run(
                ["sdtutor", "lab", "info", "caching", "--json"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
    except (OSError, subprocess.CalledProcessError, ValueError) as exc:
        sys.exit(f"Cannot read the lab's settings ({exc}). Start it: sdtutor lab start caching")
    services = info.get("services", {})
    redis_info = services.get("redis", {})
    prefix = redis_info.get("prefix") or redis_info.get("env", {}).get("REDIS_KEY_PREFIX")
    if not prefix:
        sys.exit("`sdtutor lab info caching --json` gives no key prefix; set REDIS_KEY_PREFIX.")
    return services["postgres"]["url"], redis_info["url"], prefix


def main(argv):
    """Run one call of get_product or update_product and show what it cost."""
    if len(argv) < 2 or argv[0] not in ("get", "update"):
        sys.exit(__doc__)
    database_url, redis_url, prefix = lab_settings()
    os.environ["REDIS_KEY_PREFIX"] = prefix  # before cache.py reads it

    import psycopg
    import redis

    statements = []

    class CountingCursor(psycopg.Cursor):
        def execute(self, query, params=None, **kwargs):
            text = query if isinstance(query, str) else query.as_string(self.connection)
            statements.append(" ".join(str(text).split()))
            return super().execute(query, params, **kwargs)

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import cache as learner

    db = psycopg.connect(database_url, autocommit=True, cursor_factory=CountingCursor)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    product_id = int(argv[1])
    try:
        if argv[0] == "get":
            result = learner.get_product(db, client, product_id)
        else:
            changes = {}
            for pair in argv[2:]:
                column, _, value = pair.partition("=")
                changes[column] = int(value) if value.lstrip("-").isdigit() else value
            result = learner.update_product(db, client, product_id, changes)
        print("returned:", json.dumps(result, indent=2))
    except Exception as exc:  # show what the cache holds after a failure too
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"raised {type(exc).__name__}: {first}")
    print(f"\nstatements that reached PostgreSQL: {len(statements)}")
    for text in statements:
        print("  ", text[:110])
    keys = sorted(client.scan_iter(match=prefix + "*", count=500))
    print(f"\nkeys under {prefix}: {len(keys)}")
    for key in keys[:20]:
        ttl = client.ttl(key)
        print(f"   {key}  ({client.type(key)}, {'no expiry' if ttl == -1 else f'TTL {ttl} s'})")


if __name__ == "__main__":
    main(sys.argv[1:])
