-- Ordered issue moves (docs/reference.md §5.8): the event time of the last move
-- applied to the row. A move older than it is stale there. Like the other
-- watermarks it is never set beyond the receive time + JIRASYNC_MAX_EVENT_SKEW
-- (§5.6); watermarks an older version set beyond that are not rewritten here: the
-- ordering guard finds them not binding and replaces them on the issue's next
-- change (src/sync/clock.rs), which also covers what older workers still running
-- during an upgrade write after this migration.
ALTER TABLE external_issues ADD COLUMN key_synced_at timestamptz;
