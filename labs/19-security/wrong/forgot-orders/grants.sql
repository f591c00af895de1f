-- Start from nothing, then grant the report's columns.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM :"reporting";
GRANT SELECT (id, name, country) ON customers TO :"reporting";
