"""The product page's data access, cached in memory: faster than any Redis round trip.

A dict in this module keeps every product read; update_product drops the changed one.
"""

import os

PREFIX = os.environ.get("REDIS_KEY_PREFIX", "")

COLUMNS = ("id", "sku", "name", "category", "description", "price_cents", "stock")
EDITABLE = ("name", "category", "description", "price_cents", "stock")

SELECT_PRODUCT = (
    "SELECT id, sku, name, category, description, price_cents, stock "
    "FROM products WHERE id = %s"
)

_PRODUCTS = {}  # product id -> product (or None: no such product)


def load_product(db, product_id):
    """Read one product from PostgreSQL: a dict of COLUMNS, or None if there is none."""
    row = db.execute(SELECT_PRODUCT, (product_id,)).fetchone()
    return dict(zip(COLUMNS, row)) if row else None


def get_product(db, cache, product_id):
    """Return the product as a dict of COLUMNS, or None when no product has this id."""
    if product_id not in _PRODUCTS:
        _PRODUCTS[product_id] = load_product(db, product_id)
    return _PRODUCTS[product_id]


def update_product(db, cache, product_id, changes):
    """Apply `changes` ({column: new value}) to one product; return the updated product."""
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
    _PRODUCTS.pop(product_id, None)
    return dict(zip(COLUMNS, row)) if row else None
