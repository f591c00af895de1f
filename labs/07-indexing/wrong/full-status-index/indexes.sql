CREATE INDEX orders_user_id_created_at_idx ON orders (user_id, created_at);
CREATE INDEX orders_status_idx ON orders (status);
