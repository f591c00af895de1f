-- The payouts service's data for the background-jobs lab.
--
-- A payout job credits an account: the worker calls the payment partner (handle(job)),
-- then records the effect here: one row in payouts and the amount added to the
-- account's balance. Nothing here stops a job from being recorded twice: that is the
-- learner's task (schema.sql and worker.py).
--
-- partner_calls is the payment partner's own log, written by the checker's handler
-- (one row per call, on a connection of its own), never by the worker.
-- step: Creating accounts, payouts and the partner's log
CREATE TABLE accounts (
    id            integer PRIMARY KEY,
    owner         text NOT NULL,
    balance_cents bigint NOT NULL DEFAULT 0
);
CREATE TABLE payouts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id       text NOT NULL,
    account_id   integer NOT NULL REFERENCES accounts (id),
    amount_cents integer NOT NULL CHECK (amount_cents > 0),
    paid_at      timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE partner_calls (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id    text NOT NULL,
    worker    integer NOT NULL,
    called_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
INSERT INTO accounts (id, owner) VALUES
    (1, 'ada'), (2, 'grace'), (3, 'edsger'), (4, 'barbara'), (5, 'donald'),
    (6, 'frances'), (7, 'tony'), (8, 'margaret');
