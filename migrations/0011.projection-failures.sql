-- A view that cannot apply an event stops at the event before and says so
-- here: the event's position, why, and when (projections/view_health.py).
-- Cleared when the view's position passes that event (a runner with a fixed
-- handler, or a rebuild). The other views go on meanwhile.
-- depends: 0009.broker-sync-status

ALTER TABLE projection_tracking
    ADD COLUMN failed_position bigint CHECK (failed_position > 0),
    ADD COLUMN failure text,
    ADD COLUMN failed_at timestamptz;
