CREATE INDEX orders_user_id_idx ON orders (user_id);
CREATE INDEX orders_pending_created_at_idx ON orders (created_at) WHERE status = 'pending';
