-- The shop's catalogue for the caching lab: 5,000 products, JSON-friendly on purpose
-- (whole-number prices in cents, no timestamps), so a row can go to Redis and back
-- with nothing but json.dumps and json.loads.
--
-- Two guards let the checker make a write fail, as real databases do for reasons the
-- application cannot always foresee: CHECK constraints on price and stock, and a
-- trigger that refuses any change to a product on hold.
-- step: Creating the products table
CREATE TABLE products (
    id          bigint PRIMARY KEY,
    sku         text NOT NULL UNIQUE,
    name        text NOT NULL,
    category    text NOT NULL,
    description text NOT NULL,
    price_cents integer NOT NULL CONSTRAINT price_positive CHECK (price_cents > 0),
    stock       integer NOT NULL CONSTRAINT stock_not_negative CHECK (stock >= 0)
);
CREATE TABLE product_holds (
    product_id bigint PRIMARY KEY REFERENCES products (id),
    reason     text NOT NULL
);
CREATE FUNCTION refuse_changes_on_hold() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    why text;
BEGIN
    SELECT reason INTO why FROM product_holds WHERE product_id = OLD.id;
    IF FOUND THEN
        RAISE EXCEPTION 'product % is on hold (%): it cannot change', OLD.id, why
            USING ERRCODE = 'P0001';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER products_hold_guard BEFORE UPDATE ON products
    FOR EACH ROW EXECUTE FUNCTION refuse_changes_on_hold();
-- step: Loading 5,000 products
SELECT setseed(0.05);
INSERT INTO products (id, sku, name, category, description, price_cents, stock)
SELECT g,
       'SKU-' || lpad(g::text, 6, '0'),
       initcap(adj.word) || ' ' || initcap(noun.word) || ' ' || (g % 97 + 1),
       cat.word,
       'A ' || adj.word || ' ' || noun.word || ' for everyday use. Ships in '
           || (1 + g % 5) || ' days; ' || (g % 13 + 1) || ' colours; '
           || 'model ' || upper(to_hex(g * 7919)) || '.',
       (199 + floor(random() * 49800))::int,
       floor(random() * 500)::int
FROM generate_series(1, 5000) AS g
CROSS JOIN LATERAL (
    SELECT (ARRAY['walnut', 'steel', 'linen', 'copper', 'bamboo', 'granite', 'wool',
                  'glass', 'cedar', 'cotton', 'brass', 'clay'])[1 + g % 12] AS word
) AS adj
CROSS JOIN LATERAL (
    SELECT (ARRAY['lamp', 'chair', 'kettle', 'desk', 'mug', 'shelf', 'blanket',
                  'vase', 'clock', 'rug', 'stool', 'bowl', 'frame'])[1 + (g / 12) % 13] AS word
) AS noun
CROSS JOIN LATERAL (
    SELECT (ARRAY['kitchen', 'office', 'living', 'bedroom', 'garden', 'bath'])
               [1 + (g / 7) % 6] AS word
) AS cat;
-- step: Gathering statistics (VACUUM ANALYZE)
VACUUM ANALYZE products, product_holds;
