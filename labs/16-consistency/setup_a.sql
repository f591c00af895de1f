-- Bank A for the consistency lab: 100 accounts, and the coordinator's decision log.
--
-- Money is whole units (bigint), and a balance may never go below zero: the CHECK is
-- how bank A says no to a debit it cannot cover.
-- step: Creating bank A's accounts and the decision log
CREATE TABLE accounts (
    id      integer PRIMARY KEY,
    owner   text    NOT NULL,
    balance bigint  NOT NULL CONSTRAINT balance_not_negative CHECK (balance >= 0)
);
-- The coordinator of a cross-bank transfer writes one row here, in a transaction of
-- its own, once both banks have voted yes. A row means COMMIT; no row means the
-- transfer never committed (presumed abort).
CREATE TABLE decisions (
    transfer_id text PRIMARY KEY,
    decided_at  timestamptz NOT NULL DEFAULT now()
);
-- step: Opening 100 accounts
INSERT INTO accounts (id, owner, balance)
SELECT g, 'customer ' || g, 1000 FROM generate_series(1, 100) AS g;
-- step: Gathering statistics (VACUUM ANALYZE)
VACUUM ANALYZE accounts, decisions;
