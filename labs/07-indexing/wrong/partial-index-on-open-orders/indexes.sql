CREATE INDEX latest_idx ON orders (user_id, created_at);
CREATE INDEX open_idx ON orders (created_at) WHERE status <> 'delivered';
