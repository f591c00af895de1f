-- What the reporting service may do in the shop's database.
--
-- It builds the monthly sales report: it reads orders, and the customers' id, name
-- and country. It writes nothing. Today it holds what setup.sql granted it years ago
-- (GRANT ALL ON ALL TABLES ...), and every role holds what PUBLIC holds.
--
-- :"reporting" is your reporting role: sdtutor sets this psql variable, here and in
-- `sdtutor lab shell security`. Apply this file with
--     sdtutor lab shell security -f grants.sql
-- (each time to a fresh copy of the seeded data, so what it says is what holds).

-- Every role holds what PUBLIC holds: the old "anyone may write the audit log" grant
-- would let the reporting role write. Only the app (the tables' owner) writes there.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM PUBLIC;

-- Exactly what the report reads: no emails, no password hashes, no API keys.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM :"reporting";
GRANT SELECT ON orders TO :"reporting";
GRANT SELECT (id, name, country) ON customers TO :"reporting";
