-- The shop's database, as the security review found it.
-- :"reporting" is the lab's reporting role (lab.yaml `roles:`), made before this runs.

-- step: Creating the shop's tables
CREATE TABLE customers (
    id            integer PRIMARY KEY,
    email         text NOT NULL UNIQUE,
    name          text NOT NULL,
    country       text NOT NULL,
    password_hash text NOT NULL
);
CREATE TABLE orders (
    id          integer PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES customers,
    total_cents integer NOT NULL,
    status      text NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE TABLE api_keys (
    id          integer PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES customers,
    secret      text NOT NULL
);
CREATE TABLE audit_log (
    id     bigserial PRIMARY KEY,
    at     timestamptz NOT NULL DEFAULT now(),
    actor  text NOT NULL,
    action text NOT NULL
);
-- If this table is ever gone, an injected statement dropped it.
CREATE TABLE canary (note text NOT NULL);

-- step: Seeding customers, orders and keys
INSERT INTO customers VALUES
    (1, 'ada@example.com',      'Ada Lovelace',   'GB', 'scrypt$8f1c0a…'),
    (2, 'grace@example.com',    'Grace Hopper',   'US', 'scrypt$77ab3e…'),
    (3, 'o''brien@example.ie',  'Siobhán O''Brien', 'IE', 'scrypt$c0ffee…'),
    (4, 'linus@example.fi',     'Linus T',        'FI', 'scrypt$5eed5e…'),
    (5, 'margaret@example.com', 'Margaret H',     'US', 'scrypt$a11ce5…');
INSERT INTO orders
SELECT n, 1 + n % 5, 500 + (n * 7919) % 20000, (ARRAY['paid', 'shipped', 'refunded'])[1 + n % 3],
       timestamptz '2024-01-01' + n * interval '7 hours'
FROM generate_series(1, 200) AS n;
INSERT INTO api_keys VALUES
    (1, 1, 'sk_live_ada_5f2b9c'), (2, 2, 'sk_live_grace_91d0aa'), (3, 4, 'sk_live_linus_0c77e1');
INSERT INTO canary VALUES ('still here');

-- step: Granting what the security review found granted
-- Years ago every service was allowed to write the audit log; nobody took it back.
GRANT SELECT, INSERT ON audit_log TO PUBLIC;
GRANT USAGE ON SEQUENCE audit_log_id_seq TO PUBLIC;
-- The report kept failing with "permission denied", so someone granted everything.
GRANT ALL ON ALL TABLES IN SCHEMA public TO :"reporting";
