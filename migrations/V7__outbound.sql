-- Outbound sync (docs/reference.md §10): what the application changes is pushed to Jira.
--
-- Capture: triggers record, in the transaction that makes it, every change of
-- `group_assignees` and every update of `groups.status` to `resolved` or
-- `unresolved`, whoever writes it, in `outbound_changes`; a rolled-back change
-- leaves no row. Each row records its origin: the integration whose inbound sync
-- wrote it (jirasync's own writes set `jirasync.origin` in the same statement),
-- else NULL. A NOTIFY on `jirasync_outbound` wakes the workers' relay at commit.
--
-- The relay moves captured changes to `outbound_pending`, one row per external
-- issue and kind that has a change not yet decided (the backlog), and publishes
-- a `jira_server.outbound` message for each row whose newest change has not been
-- published; the push that decides it deletes the row.

-- `tx` is the writing transaction (the top-level one, also inside a savepoint):
-- the relay moves a transaction's changes together, so they count as one.
CREATE TABLE outbound_changes (
    id bigserial PRIMARY KEY,
    group_id bigint NOT NULL,
    kind text NOT NULL CHECK (kind IN ('assignee', 'status')),
    origin_integration_id bigint,
    committed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    tx xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX outbound_changes_tx ON outbound_changes (tx);

-- The integration whose inbound sync makes the current statement's writes: the
-- setting `jirasync.origin`, local to the transaction; anything but an integer
-- id (unset, empty, or written by someone else) is no origin.
CREATE FUNCTION jirasync_origin() RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN s ~ '^[0-9]{1,18}$' THEN s::bigint END
      FROM (SELECT current_setting('jirasync.origin', true) AS s) setting
$$;

CREATE FUNCTION jirasync_capture_assignee() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO outbound_changes (group_id, kind, origin_integration_id)
        VALUES (OLD.group_id, 'assignee', jirasync_origin());
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.group_id <> OLD.group_id) THEN
        INSERT INTO outbound_changes (group_id, kind, origin_integration_id)
        VALUES (NEW.group_id, 'assignee', jirasync_origin());
    END IF;
    PERFORM pg_notify('jirasync_outbound', '');
    RETURN NULL;
END
$$;

CREATE FUNCTION jirasync_capture_status() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbound_changes (group_id, kind, origin_integration_id)
    VALUES (NEW.id, 'status', jirasync_origin());
    PERFORM pg_notify('jirasync_outbound', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER jirasync_capture_assignee
    AFTER INSERT OR DELETE ON group_assignees
    FOR EACH ROW EXECUTE FUNCTION jirasync_capture_assignee();

-- An update that leaves the assignee as it was (`date_added` only) is no change.
CREATE TRIGGER jirasync_capture_reassignee
    AFTER UPDATE ON group_assignees
    FOR EACH ROW
    WHEN (OLD.user_id IS DISTINCT FROM NEW.user_id
          OR OLD.team_id IS DISTINCT FROM NEW.team_id
          OR OLD.group_id <> NEW.group_id)
    EXECUTE FUNCTION jirasync_capture_assignee();

CREATE TRIGGER jirasync_capture_status
    AFTER UPDATE OF status ON groups
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status AND NEW.status IN ('resolved', 'unresolved'))
    EXECUTE FUNCTION jirasync_capture_status();

-- One row per external issue and kind with a change not yet decided. `seq` is the
-- newest change's id, and grows whenever changes join the row (past an older
-- transaction's id that committed late: `src/outbound/pending.rs`); a message
-- carries the `seq` it was published for, and an older one is superseded.
-- `origin_integration_id` is the newest change's origin, `first_at` when
-- the oldest undecided change was committed and `changed_at` the newest;
-- `published_seq` the `seq` last published; `held_at` when its integration could
-- not call Jira (held until it can).
CREATE TABLE outbound_pending (
    external_issue_id bigint NOT NULL REFERENCES external_issues (id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('assignee', 'status')),
    group_id bigint NOT NULL,
    integration_id bigint NOT NULL,
    seq bigint NOT NULL,
    origin_integration_id bigint,
    first_at timestamptz NOT NULL,
    changed_at timestamptz NOT NULL,
    published_seq bigint,
    held_at timestamptz,
    PRIMARY KEY (external_issue_id, kind)
);
CREATE INDEX outbound_pending_unpublished ON outbound_pending (integration_id)
    WHERE published_seq IS DISTINCT FROM seq;

-- What jirasync wrote to Jira, to recognise the webhook Jira sends for it (an echo):
-- per external issue and kind the value written (a Jira user name in lower case, ''
-- for unassigned; a status id), when, and Jira's `updated` read back after the
-- write (NULL until read back).
CREATE TABLE outbound_writes (
    external_issue_id bigint NOT NULL REFERENCES external_issues (id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('assignee', 'status')),
    value text NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now(),
    jira_updated timestamptz,
    PRIMARY KEY (external_issue_id, kind, value)
);

-- Until when no worker calls an integration's Jira for a push: its last 429's
-- Retry-After.
CREATE TABLE outbound_throttles (
    integration_id bigint PRIMARY KEY REFERENCES integrations (id) ON DELETE CASCADE,
    until timestamptz NOT NULL
);

-- Status mapping per organization, integration and Jira project (Sentry's
-- IntegrationExternalProject): external_id a Jira project key or id, *_status a
-- Jira status id or name.
CREATE TABLE integration_external_projects (
    id bigserial PRIMARY KEY,
    organization_integration_id bigint NOT NULL
        REFERENCES organization_integrations (id) ON DELETE CASCADE,
    external_id text NOT NULL,
    resolved_status text,
    unresolved_status text,
    resolution text,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_integration_id, external_id)
);
