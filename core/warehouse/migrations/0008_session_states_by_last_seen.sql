-- The sessions seen since a moment (the unsettled tail of release health, and each chunk the settle
-- job reads, core/release-health/sql.ts) are scattered over every granule of `session_states`, whose
-- order is by session. A projection ordered by last seen alone (the settle job reads every org at
-- once) lets those reads take the few granules of the last hour instead of a day's partition. On merges the projection is rebuilt from the merged
-- rows ('rebuild'), so it always holds what the table holds.
ALTER TABLE session_states MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild';
ALTER TABLE session_states ADD PROJECTION IF NOT EXISTS by_last_seen (
  SELECT * ORDER BY last_seen
);
ALTER TABLE session_states MATERIALIZE PROJECTION by_last_seen;
