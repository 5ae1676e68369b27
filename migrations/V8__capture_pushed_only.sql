-- Outbound capture (V7) for the groups something pushes, only (docs/reference.md §10.1).
--
-- A change is recorded when its group is linked to an issue whose organization
-- link has the kind's flag on (`sync_forward_assignment`, `sync_status_forward`),
-- as the writing transaction sees it: the relay applies the whole targets rule
-- when it moves the change (src/outbound/pending.rs), and a change this check
-- passes over has no target there either. Where nothing is pushed — one-way sync,
-- the groups of projects without a linked issue — a change costs one index
-- lookup: no row, no NOTIFY, nothing for the relay to move or vacuum.
--
-- The checks are written out in each function (not a SQL function called from
-- PL/pgSQL, which Postgres would plan again at every call): PL/pgSQL prepares
-- them once per session. Each first asks whether any organization link has the
-- flag on at all, a probe of an index that holds only those links: where nothing
-- is pushed it is empty, and the probe is all a change costs.

CREATE INDEX organization_integrations_forward_assignment
    ON organization_integrations (organization_id, integration_id)
    WHERE config->>'sync_forward_assignment' = 'true';
CREATE INDEX organization_integrations_forward_status
    ON organization_integrations (organization_id, integration_id)
    WHERE config->>'sync_status_forward' = 'true';

CREATE OR REPLACE FUNCTION jirasync_capture_assignee() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    captured boolean := false;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM organization_integrations
                    WHERE config->>'sync_forward_assignment' = 'true') THEN
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' AND EXISTS (
        SELECT 1 FROM group_links gl
          JOIN external_issues ei ON ei.id = gl.linked_id
          JOIN organization_integrations oi
            ON oi.organization_id = ei.organization_id AND oi.integration_id = ei.integration_id
         WHERE gl.group_id = OLD.group_id AND gl.linked_type = 'issue'
           AND oi.config->>'sync_forward_assignment' = 'true')
    THEN
        INSERT INTO outbound_changes (group_id, kind, origin_integration_id)
        VALUES (OLD.group_id, 'assignee', jirasync_origin());
        captured := true;
    END IF;
    IF (TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.group_id <> OLD.group_id)) AND EXISTS (
        SELECT 1 FROM group_links gl
          JOIN external_issues ei ON ei.id = gl.linked_id
          JOIN organization_integrations oi
            ON oi.organization_id = ei.organization_id AND oi.integration_id = ei.integration_id
         WHERE gl.group_id = NEW.group_id AND gl.linked_type = 'issue'
           AND oi.config->>'sync_forward_assignment' = 'true')
    THEN
        INSERT INTO outbound_changes (group_id, kind, origin_integration_id)
        VALUES (NEW.group_id, 'assignee', jirasync_origin());
        captured := true;
    END IF;
    IF captured THEN
        PERFORM pg_notify('jirasync_outbound', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION jirasync_capture_status() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM organization_integrations
                    WHERE config->>'sync_status_forward' = 'true') THEN
        RETURN NULL;
    END IF;
    IF EXISTS (
        SELECT 1 FROM group_links gl
          JOIN external_issues ei ON ei.id = gl.linked_id
          JOIN organization_integrations oi
            ON oi.organization_id = ei.organization_id AND oi.integration_id = ei.integration_id
         WHERE gl.group_id = NEW.id AND gl.linked_type = 'issue'
           AND oi.config->>'sync_status_forward' = 'true')
    THEN
        INSERT INTO outbound_changes (group_id, kind, origin_integration_id)
        VALUES (NEW.id, 'status', jirasync_origin());
        PERFORM pg_notify('jirasync_outbound', '');
    END IF;
    RETURN NULL;
END
$$;
