-- A user's latest orders: equality column first, then the sort column. The index
-- hands rows over newest first (read backward), so LIMIT 20 stops after 20 entries.
CREATE INDEX orders_user_id_created_at_idx ON orders (user_id, created_at);

-- The pending queue: only pending orders are indexed (about 2% of the table), keyed
-- by the column the queue sorts on.
CREATE INDEX orders_pending_created_at_idx ON orders (created_at) WHERE status = 'pending';
