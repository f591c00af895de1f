-- The storefront's colour filter: every product whose attributes say it has :color.

-- name: by_color
SELECT id, name, category, price_cents
FROM products
WHERE attributes @> jsonb_build_object('color', :color::text)
ORDER BY id;
