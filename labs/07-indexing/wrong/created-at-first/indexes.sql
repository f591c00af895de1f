CREATE INDEX orders_created_at_user_id_idx ON orders (created_at, user_id);
CREATE INDEX orders_pending_created_at_idx ON orders (created_at) WHERE status = 'pending';
