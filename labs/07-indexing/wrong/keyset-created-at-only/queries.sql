-- The order-history pages of one user, newest first, 20 orders a page.
-- The app runs first_page for page 1, then next_page for each page after it.

-- name: first_page
SELECT id, status, total, created_at
FROM orders
WHERE user_id = :user_id
ORDER BY created_at DESC, id DESC
LIMIT 20;

-- name: next_page
-- Keyset pagination on created_at alone.
SELECT id, status, total, created_at
FROM orders
WHERE user_id = :user_id
  AND created_at < :last_created_at
ORDER BY created_at DESC, id DESC
LIMIT 20;
