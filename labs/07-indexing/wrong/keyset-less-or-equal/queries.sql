-- name: first_page
SELECT id, status, total, created_at
FROM orders
WHERE user_id = :user_id
ORDER BY created_at DESC, id DESC
LIMIT 20;

-- name: next_page
SELECT id, status, total, created_at FROM orders
WHERE user_id = :user_id AND (created_at, id) <= (:last_created_at, :last_id)
ORDER BY created_at DESC, id DESC
LIMIT 20;
