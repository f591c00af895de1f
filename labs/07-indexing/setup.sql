-- The orders database for the indexing lab.
-- Skewed on purpose: users 1-100 have 1,000 orders each, imported in batches of 25
-- that share one created_at; users 101-20000 have 5 orders each. With uniform data
-- a (user_id) index and a (user_id, created_at) index give the same plan, so a checker
-- could not tell them apart.
-- step: Creating the users and orders tables
SELECT setseed(0.42);
CREATE TABLE users (
    id         bigint PRIMARY KEY,
    email      text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE TABLE orders (
    id         bigint NOT NULL,
    user_id    bigint NOT NULL,
    status     text NOT NULL,
    total      numeric(10, 2) NOT NULL,
    created_at timestamptz NOT NULL
);
-- step: Loading 20,000 users
INSERT INTO users (id, email, created_at)
SELECT g, 'user' || g || '@example.com', timestamptz '2023-01-01' + g * interval '17 minutes'
FROM generate_series(1, 20000) AS g;
-- step: Loading 199,500 orders
SELECT setseed(0.42);
INSERT INTO orders (id, user_id, status, total, created_at)
SELECT row_number() OVER (ORDER BY t.created_at, t.user_id, t.n), t.user_id,
       CASE WHEN t.r < 0.02 THEN 'pending'
            WHEN t.r < 0.05 THEN 'cancelled'
            WHEN t.r < 0.20 THEN 'shipped'
            ELSE 'delivered' END,
       round((5 + random() * 295)::numeric, 2),
       t.created_at
FROM (
    SELECT u AS user_id, n,
           timestamptz '2024-01-01' + (n / 25) * interval '17 hours' + u * interval '1 second'
               AS created_at,
           random() AS r
    FROM generate_series(1, 100) AS u, generate_series(0, 999) AS n
    UNION ALL
    SELECT u, n, timestamptz '2024-01-01' + random() * interval '700 days', random()
    FROM generate_series(101, 20000) AS u, generate_series(1, 5) AS n
) AS t;
-- step: Adding keys (after the load: much faster than during it)
ALTER TABLE orders ADD PRIMARY KEY (id);
ALTER TABLE orders ADD FOREIGN KEY (user_id) REFERENCES users (id);
-- step: Gathering statistics (VACUUM ANALYZE)
VACUUM ANALYZE users, orders;
