-- Where a model call went: the upstream that answered (after any fallback) and, when a
-- task-class route chose another model, the model the agent asked for.
ALTER TABLE reservations ADD COLUMN upstream TEXT;
ALTER TABLE reservations ADD COLUMN requested_model TEXT;
