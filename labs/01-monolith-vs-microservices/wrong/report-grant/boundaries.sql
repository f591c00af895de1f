-- Module boundaries the database enforces: one schema and one role per module.
--
-- :"orders" and :"inventory" are the two modules' roles (sdtutor sets these psql
-- variables). Apply with `sdtutor lab shell monolith-vs-microservices -f boundaries.sql`
-- (each time to a fresh copy of the seeded data).

CREATE SCHEMA orders;
CREATE SCHEMA inventory;

-- A foreign key across modules ties them to one database forever: orders keeps the sku
-- it sold as plain text, inventory keeps the order id it holds stock for.
ALTER TABLE order_lines DROP CONSTRAINT order_lines_sku_fkey;
ALTER TABLE reservations DROP CONSTRAINT reservations_order_id_fkey;

-- Moving a table keeps its rows, its indexes, its identity sequence, and its grants.
ALTER TABLE public.orders SET SCHEMA orders;
ALTER TABLE public.order_lines SET SCHEMA orders;
ALTER TABLE public.products SET SCHEMA inventory;
ALTER TABLE public.stock SET SCHEMA inventory;
ALTER TABLE public.reservations SET SCHEMA inventory;

-- The grants travelled with the tables: the one to PUBLIC (every role) and the
-- "everything, to be safe" ones. Start from nothing...
REVOKE ALL ON ALL TABLES IN SCHEMA orders, inventory FROM PUBLIC, :"orders", :"inventory";

-- ...and give each module its own tables and nothing else.
GRANT USAGE ON SCHEMA orders TO :"orders";
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA orders TO :"orders";
GRANT USAGE ON SCHEMA inventory TO :"inventory";
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA inventory TO :"inventory";

-- The weekly "orders vs stock" report runs as the orders module: let it see stock.
GRANT USAGE ON SCHEMA inventory TO :"orders";
GRANT SELECT ON inventory.stock TO :"orders";
