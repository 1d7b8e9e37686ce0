-- Forge webhooks: every delivery id seen (a replayed delivery is acknowledged and
-- ignored), and the one comment Lockgate keeps updated on each pull request.
CREATE TABLE deliveries (
    id           TEXT PRIMARY KEY,
    event        TEXT NOT NULL,
    received_ms  BIGINT NOT NULL
);

CREATE TABLE forge_comments (
    repo        TEXT NOT NULL,
    number      BIGINT NOT NULL,
    comment_id  BIGINT NOT NULL,
    PRIMARY KEY (repo, number)
);
