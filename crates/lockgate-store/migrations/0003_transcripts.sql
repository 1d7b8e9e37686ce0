-- Redacted agent-session transcripts, content-addressed by the digest their
-- attestations carry (`sha256:<hex>` of exactly these bytes), for the web viewer.
CREATE TABLE transcripts (
    digest      TEXT PRIMARY KEY,
    format      TEXT NOT NULL,
    body        TEXT NOT NULL,
    steps       BIGINT NOT NULL,
    created_ms  BIGINT NOT NULL
);
