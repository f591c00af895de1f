-- Your rules for the payouts table, applied to the lab's database:
--
--     sdtutor lab shell background-jobs -f schema.sql
--
-- Each run starts from a fresh copy of the seeded data and applies this whole file.
-- setup.sql (in the lab's folder) made accounts, payouts and partner_calls;
-- `\d payouts` in `sdtutor lab shell background-jobs` shows them.
ALTER TABLE payouts ADD CONSTRAINT payouts_job_id_key UNIQUE (job_id);
