CREATE INDEX latest_idx ON orders (user_id, status, created_at);
CREATE INDEX queue_idx ON orders (created_at) WHERE status = 'pending';
