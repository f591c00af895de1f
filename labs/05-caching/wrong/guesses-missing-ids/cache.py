"""The product page's data access, cached in Redis.

Ids run 1 to 5000, so an id past that cannot be a product: it is answered at once,
without the database or the cache.
"""

import json
import os
import random
import time
import uuid

PREFIX = os.environ.get("REDIS_KEY_PREFIX", "")  # e.g. "sdtutor:1a2b3c4d:caching:"
LAST_ID = 5000  # the highest product id in the catalogue

COLUMNS = ("id", "sku", "name", "category", "description", "price_cents", "stock")
EDITABLE = ("name", "category", "description", "price_cents", "stock")

SELECT_PRODUCT = (
    "SELECT id, sku, name, category, description, price_cents, stock "
    "FROM products WHERE id = %s"
)

TTL = 300  # the longest a product may stay stale if an invalidation is ever missed
TTL_JITTER = 30  # keys filled together should not all expire in the same second
MISSING_TTL = 30  # "no such product" is remembered briefly: it may be created soon
LOCK_TTL_MS = 5000  # longer than a read takes; a crashed holder frees it on its own
POLL = 0.05  # how often a waiting reader looks for the value again
MAX_WAIT = 10.0  # after this, read the database rather than keep a user waiting

# Delete the lock only if it is still ours: after it expired, another reader may hold it.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


def product_key(product_id):
    """The Redis key of one product's cached copy."""
    return f"{PREFIX}product:{product_id}"


def load_product(db, product_id):
    """Read one product from PostgreSQL: a dict of COLUMNS, or None if there is none."""
    row = db.execute(SELECT_PRODUCT, (product_id,)).fetchone()
    return dict(zip(COLUMNS, row)) if row else None


def _fill(db, cache, key, product_id):
    """Load the product from the database and keep a copy (or its absence) in Redis."""
    product = load_product(db, product_id)
    if product is None:
        cache.set(key, json.dumps(None), ex=MISSING_TTL)
    else:
        cache.set(key, json.dumps(product), ex=TTL + random.randint(0, TTL_JITTER))
    return product


def get_product(db, cache, product_id):
    """Return the product as a dict of COLUMNS, or None when no product has this id."""
    if product_id > LAST_ID:
        return None  # no such product: nothing to look up, nothing to cache
    key = product_key(product_id)
    lock = f"{PREFIX}lock:product:{product_id}"
    token = uuid.uuid4().hex
    deadline = time.monotonic() + MAX_WAIT
    while True:
        cached = cache.get(key)
        if cached is not None:
            return json.loads(cached)  # a hit; "null" is a cached "no such product"
        if cache.set(lock, token, nx=True, px=LOCK_TTL_MS):
            try:
                cached = cache.get(key)  # filled while we were taking the lock?
                if cached is not None:
                    return json.loads(cached)
                return _fill(db, cache, key, product_id)
            finally:
                cache.eval(RELEASE, 1, lock, token)
        if time.monotonic() > deadline:
            return load_product(db, product_id)  # the holder is stuck: degrade, don't fail
        time.sleep(POLL)


def update_product(db, cache, product_id, changes):
    """Apply `changes` ({column: new value}) to one product; return the updated product.

    Returns None when no product has this id. If PostgreSQL refuses the change (a
    constraint, a trigger), the error propagates and the cache is left as it was, which
    still matches the database.
    """
    from psycopg import sql

    unknown = set(changes) - set(EDITABLE)
    if unknown or not changes:
        raise ValueError(f"cannot change {sorted(unknown) or 'nothing'}; editable: {EDITABLE}")
    query = sql.SQL("UPDATE products SET {} WHERE id = %s RETURNING {}").format(
        sql.SQL(", ").join(
            sql.SQL("{} = %s").format(sql.Identifier(column)) for column in changes
        ),
        sql.SQL(", ").join(sql.Identifier(column) for column in COLUMNS),
    )
    row = db.execute(query, (*changes.values(), product_id)).fetchone()
    # The UPDATE has committed (autocommit): only now drop the old copy. Deleting, not
    # writing the new value, means two racing writers cannot leave the older one behind.
    cache.delete(product_key(product_id))
    return dict(zip(COLUMNS, row)) if row else None
