-- Adds what source models and quarantine need: check levels and actions in the results,
-- and the append-only quarantine of set-aside records. (The models' output,
-- stg.model_orders, is created by 037_model_orders.sql each run, like the features.)
-- grain: meta.quarantine one row per quarantined record per check per run
-- requires: V002__create_raw_events.sql, V004__create_meta_tables.sql
ALTER TABLE meta.validation_results
ADD COLUMN level text NOT NULL DEFAULT 'records',
ADD COLUMN action text NOT NULL DEFAULT 'fail',
ADD CONSTRAINT validation_results_level_check CHECK (level IN ('records', 'orders')),
ADD CONSTRAINT validation_results_action_check CHECK (action IN ('fail', 'quarantine')),
DROP CONSTRAINT validation_results_status_check;

ALTER TABLE meta.validation_results
ADD CONSTRAINT validation_results_status_check CHECK (status IN ('pass', 'warn', 'fail', 'quarantine'));

-- Records a check set aside instead of failing the run: every one of them (no cap), so
-- nothing is lost silently. A later run on a corrected file stages the corrected records.
CREATE TABLE meta.quarantine (
    quarantine_id bigint GENERATED ALWAYS AS IDENTITY,
    run_id text COLLATE "C" NOT NULL,
    check_id text NOT NULL,
    event_id bigint NOT NULL,
    file_sha256 text COLLATE "C" NOT NULL,
    file_path text NOT NULL,
    line_number bigint NOT NULL,
    failing_value text,
    payload jsonb NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT quarantine_pkey PRIMARY KEY (quarantine_id)
);

-- Staging leaves out the run's quarantined events: looked up by (run_id, event_id).
CREATE INDEX quarantine_run_id_event_id_idx ON meta.quarantine (run_id, event_id);

COMMENT ON TABLE meta.quarantine IS
'Source records set aside by a check with action: quarantine, per run, with lineage and the '
'payload as received. Append-only: UPDATE, DELETE and TRUNCATE are refused.';

CREATE FUNCTION meta.refuse_modification() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%.% is append-only: % is not allowed', tg_table_schema, tg_table_name, tg_op
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER quarantine_refuse_modification
BEFORE UPDATE OR DELETE OR TRUNCATE ON meta.quarantine
FOR EACH STATEMENT EXECUTE FUNCTION meta.refuse_modification();
