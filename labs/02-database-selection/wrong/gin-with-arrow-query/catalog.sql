CREATE INDEX products_attributes_gin ON products USING gin (attributes);
