-- step: the catalogue every page shows, and the people who may log in
CREATE TABLE items (
    id    integer PRIMARY KEY,
    name  text NOT NULL,
    price numeric(8, 2) NOT NULL
);
INSERT INTO items (id, name, price)
SELECT i, 'item ' || i, (i % 50) + 0.99 FROM generate_series(1, 20) AS i;

CREATE TABLE users (
    name text PRIMARY KEY
);
INSERT INTO users (name) VALUES ('ada'), ('grace'), ('linus');
