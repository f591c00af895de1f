-- Module boundaries: fresh tables in fresh schemas, the old ones dropped.
CREATE SCHEMA orders;
CREATE SCHEMA inventory;

CREATE TABLE orders.orders (LIKE public.orders INCLUDING ALL);
CREATE TABLE orders.order_lines (LIKE public.order_lines INCLUDING ALL);
CREATE TABLE inventory.products (LIKE public.products INCLUDING ALL);
CREATE TABLE inventory.stock (LIKE public.stock INCLUDING ALL);
CREATE TABLE inventory.reservations (LIKE public.reservations INCLUDING ALL);
DROP TABLE public.reservations, public.order_lines, public.stock, public.orders, public.products;

GRANT USAGE ON SCHEMA orders TO :"orders";
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA orders TO :"orders";
GRANT USAGE ON SCHEMA inventory TO :"inventory";
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA inventory TO :"inventory";
