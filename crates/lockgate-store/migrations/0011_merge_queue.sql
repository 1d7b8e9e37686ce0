-- The merge queue (issue 8). An entry is one head of one change waiting to land; its
-- state moves queued → checking → testing → pushing → merged, or to ejected with a
-- reason. `pushing` is written (with the commit the result was built on, the result,
-- and the landing: the tested commit the branch moves to — the last result of a batch)
-- before the branch is advanced, so a restart can tell a push that happened from one
-- that did not. One entry per (repo, change, head): entering twice is a no-op.
CREATE TABLE queue_entries (
    id           TEXT PRIMARY KEY,
    repo         TEXT NOT NULL,
    change_ref   TEXT NOT NULL,
    head_sha     TEXT NOT NULL,
    decision_id  TEXT NOT NULL,
    agent        TEXT,
    state        TEXT NOT NULL,
    reason       TEXT NOT NULL,
    target_sha   TEXT,
    result_sha   TEXT,
    check_digest TEXT,
    landing_sha  TEXT,
    attempts     BIGINT NOT NULL,
    created_ms   BIGINT NOT NULL,
    updated_ms   BIGINT NOT NULL,
    UNIQUE (repo, change_ref, head_sha)
);
CREATE INDEX queue_entries_state ON queue_entries (repo, state, created_ms);

-- Merges the queue made: the change's head and the commit that landed (a squash or
-- rebase makes a new one), so provenance follows the merged commit. Logged like
-- approvals: log_index is set once the merge is in the transparency log.
CREATE TABLE merges (
    id           TEXT PRIMARY KEY,
    repo         TEXT NOT NULL,
    change_ref   TEXT NOT NULL,
    head_sha     TEXT NOT NULL,
    merged_sha   TEXT NOT NULL,
    target       TEXT NOT NULL,
    target_sha   TEXT NOT NULL,
    method       TEXT NOT NULL,
    agent        TEXT,
    decision_id  TEXT NOT NULL,
    check_digest TEXT NOT NULL,
    created_ms   BIGINT NOT NULL,
    log_index    BIGINT,
    UNIQUE (repo, merged_sha)
);
CREATE INDEX merges_head ON merges (repo, head_sha);
CREATE INDEX merges_unlogged ON merges (log_index, created_ms);

-- Which replica works a repository's queue: a lease taken by conditional upsert and
-- renewed while working; another replica takes over once it lapses.
CREATE TABLE queue_leases (
    repo         TEXT PRIMARY KEY,
    holder       TEXT NOT NULL,
    until_ms     BIGINT NOT NULL
);
