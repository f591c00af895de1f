"""The product page's data access: PostgreSQL is the truth, Redis is the cache.

`db` is a psycopg 3 connection (autocommit on) to the lab's PostgreSQL; `cache` is a
redis-py client with decode_responses=True, so it gives and takes str. Both are made for
you and passed in. Your keys must start with the prefix in REDIS_KEY_PREFIX: the lab's
Redis user may touch no other key.

Right now every call goes to the database. Make get_product read through Redis
(cache-aside) and keep the cache honest when update_product writes. README.md says what
the checker will try.
"""

import os

PREFIX = os.environ.get("REDIS_KEY_PREFIX", "")  # e.g. "sdtutor:1a2b3c4d:caching:"

COLUMNS = ("id", "sku", "name", "category", "description", "price_cents", "stock")
EDITABLE = ("name", "category", "description", "price_cents", "stock")

SELECT_PRODUCT = (
    "SELECT id, sku, name, category, description, price_cents, stock "
    "FROM products WHERE id = %s"
)


def load_product(db, product_id):
    """Read one product from PostgreSQL: a dict of COLUMNS, or None if there is none."""
    row = db.execute(SELECT_PRODUCT, (product_id,)).fetchone()
    return dict(zip(COLUMNS, row)) if row else None


def get_product(db, cache, product_id):
    """Return the product as a dict of COLUMNS, or None when no product has this id."""
    return load_product(db, product_id)


def update_product(db, cache, product_id, changes):
    """Apply `changes` ({column: new value}) to one product; return the updated product.

    Returns None when no product has this id. If PostgreSQL refuses the change (a
    constraint, a trigger), the error propagates to the caller.
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
    return dict(zip(COLUMNS, row)) if row else None
