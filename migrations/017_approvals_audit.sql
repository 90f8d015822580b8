-- Who published each plan version, and who approved it (policy `approval: required`).
ALTER TABLE plan_versions
    ADD COLUMN published_by text,
    ADD COLUMN approved_by  text,
    ADD COLUMN approved_at  timestamptz,
    ADD CONSTRAINT plan_versions_approved_together
        CHECK ((approved_by IS NULL) = (approved_at IS NULL));

-- What operators did, append-only: the triggers refuse to change or remove a row.
CREATE TABLE audit_log (
    id       bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor    text        NOT NULL,
    action   text        NOT NULL,
    plan_id  text,
    version  integer,
    run_id   text,
    subject  text,
    detail   jsonb       NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX audit_log_plan ON audit_log (plan_id, id) WHERE plan_id IS NOT NULL;

CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP;
END
$$;

CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
