-- Where each approval (in its current state) sits in the transparency log; NULL until
-- the server's publisher has appended it. A change of state clears it (the new state
-- is a new log entry).
ALTER TABLE approvals ADD COLUMN log_index BIGINT;
CREATE INDEX approvals_unlogged ON approvals (created_ms) WHERE log_index IS NULL;
