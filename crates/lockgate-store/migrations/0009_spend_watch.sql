-- The anomaly watch sums recent spend per agent: find recent calls without a scan.
CREATE INDEX reservations_created ON reservations (created_ms);
