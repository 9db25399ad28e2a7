-- Archiving moves the oldest events to a file; the anchor keeps the last archived event's seq
-- and hash so that verification continues from it. Only archived events may be deleted.
CREATE TABLE audit_anchor (
    id          BIGINT PRIMARY KEY CHECK (id = 1),
    seq         BIGINT NOT NULL,
    hash        TEXT NOT NULL,
    archived_at BIGINT NOT NULL
);

CREATE FUNCTION steward_audit_delete_guard() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.seq > COALESCE((SELECT seq FROM audit_anchor WHERE id = 1), 0) THEN
        RAISE EXCEPTION 'the audit log is append-only';
    END IF;
    RETURN OLD;
END;
$$;
DROP TRIGGER audit_events_append_only_delete ON audit_events;
CREATE TRIGGER audit_events_append_only_delete BEFORE DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION steward_audit_delete_guard();
