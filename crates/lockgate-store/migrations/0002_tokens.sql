-- API tokens for people and for CI. Only a SHA-256 of the secret part is stored; the
-- token is shown once, when it is made.
CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    subject     TEXT NOT NULL,
    role        TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_ms  BIGINT NOT NULL,
    revoked_ms  BIGINT
);
CREATE INDEX tokens_subject ON tokens (subject);
