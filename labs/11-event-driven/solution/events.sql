-- Your rules for the event store, applied to the lab's database:
--
--     sdtutor lab shell event-driven -f events.sql
--
-- Each run starts from a fresh copy of the seeded data and applies this whole file.

-- Optimistic concurrency: one event per version of a stream. Of two writers that both
-- loaded version 4 and append version 5, the database accepts the first and refuses
-- the second, whatever the application checked before.
ALTER TABLE account_events
    ADD CONSTRAINT one_event_per_version UNIQUE (account_id, version);

-- Events are facts: the application may add them, never change or remove them. A
-- mistake is corrected by a new event. (The lab's login owns the tables, so the rule
-- is a trigger; in production the app's role would also lack UPDATE and DELETE.)
CREATE FUNCTION refuse_history_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'account_events is append-only: % is not allowed', TG_OP
        USING HINT = 'Record a correcting event instead.';
END
$$;
CREATE TRIGGER account_events_append_only
    BEFORE UPDATE OR DELETE ON account_events
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER account_events_no_truncate
    BEFORE TRUNCATE ON account_events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_history_change();

-- The projection remembers how far it has read the log, in the same database as the
-- read model, so the two are always updated together.
CREATE TABLE projection_checkpoint (
    name     text PRIMARY KEY,
    position bigint NOT NULL
);
INSERT INTO projection_checkpoint VALUES ('account_balances', 0);
