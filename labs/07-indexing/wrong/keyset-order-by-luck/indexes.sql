CREATE INDEX latest_idx ON orders (user_id, created_at, id);
CREATE INDEX queue_idx ON orders (created_at) WHERE status = 'pending';
