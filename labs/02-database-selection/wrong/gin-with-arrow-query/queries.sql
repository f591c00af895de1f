-- name: by_color
SELECT id, name, category, price_cents
FROM products
WHERE attributes->>'color' = :color
ORDER BY id;
