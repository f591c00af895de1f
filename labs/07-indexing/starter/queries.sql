-- The order-history pages of one user, newest first, 20 orders a page.
-- The app runs first_page for page 1, then next_page for each page after it.

-- name: first_page
SELECT id, status, total, created_at
FROM orders
WHERE user_id = :user_id
ORDER BY created_at DESC, id DESC
LIMIT 20;

-- name: next_page
-- Parameters the app can give: :user_id, :offset (rows already shown), and the
-- last row already shown: :last_created_at, :last_id.
SELECT id, status, total, created_at
FROM orders
WHERE user_id = :user_id
ORDER BY created_at DESC, id DESC
LIMIT 20 OFFSET :offset;
