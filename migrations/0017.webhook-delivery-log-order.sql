-- The delivery log of an endpoint is read newest event first, a page at a
-- time after a (position, ordinal) cursor (GET /v1/webhook-endpoints/{id}/
-- deliveries): an index in that order, for every status (the owed index
-- holds pending deliveries only).
-- depends: 0016.reconciliation-states

CREATE INDEX webhook_deliveries_log_position_idx
    ON webhook_deliveries (endpoint_id, position DESC, ordinal DESC);
