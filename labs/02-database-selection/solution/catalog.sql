-- One GIN index over every key and value of the attributes: it serves containment
-- (attributes @> '{"color": "teal"}') for any attribute, not only colour.
CREATE INDEX products_attributes_gin ON products USING gin (attributes jsonb_path_ops);
