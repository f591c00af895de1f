CREATE INDEX products_color ON products ((attributes->'color'));
