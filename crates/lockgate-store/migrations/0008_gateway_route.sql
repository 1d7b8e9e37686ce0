-- Which upstream answered a model call (the route chosen, after any fallback).
ALTER TABLE reservations ADD COLUMN upstream TEXT;
