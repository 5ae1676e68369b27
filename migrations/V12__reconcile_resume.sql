-- A reconciliation runs in slices of a few minutes (docs/reference.md §6.4): the
-- run in progress — when it started, the time it searches from, and the last
-- linked key it finished — so that a failure, a redelivery or the next slice
-- resumes where it stopped instead of starting again. All NULL between runs.
ALTER TABLE integration_reconciliations
    ADD COLUMN run_started_at timestamptz,
    ADD COLUMN run_since timestamptz,
    ADD COLUMN run_after_key text;
