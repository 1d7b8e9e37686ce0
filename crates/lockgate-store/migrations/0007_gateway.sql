-- The LLM gateway's ledger: budgets with reservations, one row per model call, and
-- revoked agent credentials.

-- One row per budget line: a scope (agent:ID, project:NAME, credential:ID:KEY) in a
-- period (day:YYYY-MM-DD, month:YYYY-MM, ever). A reservation raises reserved_micros
-- only while spent + reserved stays within the limit (one conditional UPDATE, so
-- concurrent callers on any number of replicas cannot jointly overspend).
CREATE TABLE budgets (
    scope            TEXT NOT NULL,
    period           TEXT NOT NULL,
    limit_micros     BIGINT NOT NULL,
    spent_micros     BIGINT NOT NULL DEFAULT 0,
    reserved_micros  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, period)
);

-- One row per model call: reserved before the upstream call, settled with its cost.
CREATE TABLE reservations (
    id             TEXT PRIMARY KEY,
    agent          TEXT NOT NULL,
    project        TEXT NOT NULL,
    credential     TEXT NOT NULL,
    model          TEXT NOT NULL,
    amount_micros  BIGINT NOT NULL,
    lines          TEXT NOT NULL,
    created_ms     BIGINT NOT NULL,
    settled_ms     BIGINT,
    cost_micros    BIGINT
);
CREATE INDEX reservations_open ON reservations (settled_ms, created_ms);
CREATE INDEX reservations_agent ON reservations (agent, created_ms);

CREATE TABLE credential_revocations (
    id          TEXT PRIMARY KEY,
    revoked_by  TEXT NOT NULL,
    revoked_ms  BIGINT NOT NULL
);
