-- The bank and the shop catalogue for the database-selection lab.
-- accounts: balances in whole cents. No CHECK (balance >= 0) on purpose: refusing an
-- overdraft is the job of transfer(), and the audit trigger below records every
-- committed balance below zero, even one that a later transfer repaired.
-- products: 60,000 products of five kinds, each kind with its own attributes in a
-- jsonb document. 'teal' and 'mustard' are rare colours (a few hundred products), so a
-- good index beats reading the whole table by far.
-- step: Creating the accounts and the overdraft audit
CREATE TABLE accounts (
    id      bigint PRIMARY KEY,
    owner   text   NOT NULL,
    balance bigint NOT NULL
);
CREATE TABLE overdrafts (
    account_id bigint      NOT NULL,
    balance    bigint      NOT NULL,
    seen_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE FUNCTION audit_overdraft() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO overdrafts (account_id, balance) VALUES (NEW.id, NEW.balance);
    RETURN NEW;
END
$$;
CREATE TRIGGER accounts_overdraft_audit
    AFTER INSERT OR UPDATE ON accounts
    FOR EACH ROW WHEN (NEW.balance < 0)
    EXECUTE FUNCTION audit_overdraft();
INSERT INTO accounts (id, owner, balance)
SELECT g, 'customer ' || g, 10000 * (1 + g % 7)
FROM generate_series(1, 1000) AS g;
-- step: Loading 60,000 products with their attributes
SELECT setseed(0.2);
CREATE TABLE products (
    id         bigint PRIMARY KEY,
    sku        text   NOT NULL UNIQUE,
    name       text   NOT NULL,
    category   text   NOT NULL,
    price_cents integer NOT NULL,
    attributes jsonb  NOT NULL DEFAULT '{}'
);
INSERT INTO products (id, sku, name, category, price_cents, attributes)
SELECT g,
       'SKU-' || lpad(g::text, 6, '0'),
       initcap(k.category) || ' ' || g,
       k.category,
       (500 + random() * 99500)::int,
       CASE k.category
       WHEN 'shoe' THEN jsonb_build_object(
           'brand', (ARRAY['Stride', 'Peak', 'Urbo', 'Fleet'])[1 + (g % 4)],
           'size', 36 + g % 12,
           'color', c.color,
           'waterproof', g % 5 = 0)
       WHEN 'laptop' THEN jsonb_build_object(
           'brand', (ARRAY['Lumen', 'Orbit', 'Kite'])[1 + (g % 3)],
           'ram_gb', (ARRAY[8, 16, 32, 64])[1 + (g % 4)],
           'cpu', (ARRAY['x86-64', 'arm64'])[1 + (g % 2)],
           'color', c.color)
       WHEN 'book' THEN jsonb_build_object(
           'author', 'Author ' || (g % 900),
           'pages', 80 + g % 700,
           'language', (ARRAY['en', 'de', 'fr', 'es'])[1 + (g % 4)])
       WHEN 'sofa' THEN jsonb_build_object(
           'material', (ARRAY['linen', 'leather', 'velvet'])[1 + (g % 3)],
           'seats', 2 + g % 3,
           'color', c.color,
           'dimensions_cm', jsonb_build_object('w', 160 + g % 80, 'd', 90, 'h', 85))
       ELSE jsonb_build_object(
           'brand', (ARRAY['Nimbus', 'Vega'])[1 + (g % 2)],
           'storage_gb', (ARRAY[64, 128, 256, 512])[1 + (g % 4)],
           'color', c.color,
           'dual_sim', g % 3 = 0)
       END
FROM generate_series(1, 60000) AS g
CROSS JOIN LATERAL (
    SELECT (ARRAY['shoe', 'laptop', 'book', 'sofa', 'phone'])[1 + (g % 5)] AS category
) AS k
CROSS JOIN LATERAL (
    SELECT CASE WHEN r < 0.006 THEN 'teal'
                WHEN r < 0.010 THEN 'mustard'
                ELSE (ARRAY['black', 'white', 'grey', 'navy', 'red', 'green', 'blue',
                            'brown', 'beige', 'silver'])[1 + floor(random() * 10)::int]
           END AS color
    FROM (SELECT random() + g * 0 AS r) AS x
) AS c;
-- step: Gathering statistics (VACUUM ANALYZE)
VACUUM ANALYZE accounts, products, overdrafts;
