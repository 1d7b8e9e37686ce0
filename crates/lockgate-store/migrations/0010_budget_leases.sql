-- Budget leases: a replica reserves a slice of a credential's budget lines as one
-- reservation row (is_lease = 1) and draws calls from it in memory; the calls are
-- recorded afterwards in batches, each naming the lease it drew from. Spend views and
-- the anomaly watch count calls, never leases.
ALTER TABLE reservations ADD COLUMN is_lease BIGINT NOT NULL DEFAULT 0;
ALTER TABLE reservations ADD COLUMN lease TEXT;
