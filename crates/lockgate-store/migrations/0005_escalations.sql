-- Time-boxed escalation: a change whose head waited too long for approval. One row per
-- head (replicas race to insert it; one wins). The hold it places has the escalation's
-- id, so placing it again is a no-op; the on-call notice is sent under a short lease
-- and retried until it is acknowledged.
CREATE TABLE escalations (
    id           TEXT PRIMARY KEY,
    repo         TEXT NOT NULL,
    change_ref   TEXT NOT NULL,
    head_sha     TEXT NOT NULL,
    reason       TEXT NOT NULL,
    created_ms   BIGINT NOT NULL,
    hold_placed  BIGINT NOT NULL,
    notified_ms  BIGINT,
    attempts     BIGINT NOT NULL,
    lease_ms     BIGINT NOT NULL,
    last_error   TEXT,
    UNIQUE (repo, change_ref, head_sha)
);
CREATE INDEX escalations_open ON escalations (notified_ms, hold_placed);
