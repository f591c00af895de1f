-- Bank B for the consistency lab: 100 accounts, a few of them frozen.
--
-- A frozen account may not change, but bank B only finds out when it is asked to
-- commit: the guard is a deferred constraint trigger, which PostgreSQL runs at COMMIT,
-- or at PREPARE TRANSACTION, where it makes bank B vote no.
-- step: Creating bank B's accounts
CREATE TABLE accounts (
    id      integer PRIMARY KEY,
    owner   text    NOT NULL,
    balance bigint  NOT NULL CONSTRAINT balance_not_negative CHECK (balance >= 0),
    frozen  boolean NOT NULL DEFAULT false
);
CREATE FUNCTION refuse_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT frozen FROM accounts WHERE id = NEW.id) THEN
        RAISE EXCEPTION 'account % is frozen by compliance: it cannot change', NEW.id
            USING ERRCODE = 'P0001';
    END IF;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER frozen_guard AFTER UPDATE ON accounts
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION refuse_frozen();
-- step: Opening 100 accounts
INSERT INTO accounts (id, owner, balance, frozen)
SELECT g, 'customer ' || g, 1000, g IN (13, 37, 71) FROM generate_series(1, 100) AS g;
-- step: Gathering statistics (VACUUM ANALYZE)
VACUUM ANALYZE accounts;
