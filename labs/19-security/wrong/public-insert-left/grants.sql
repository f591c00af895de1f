-- Exactly what the report reads, granted to the reporting role.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM :"reporting";
GRANT SELECT ON orders TO :"reporting";
GRANT SELECT (id, name, country) ON customers TO :"reporting";
