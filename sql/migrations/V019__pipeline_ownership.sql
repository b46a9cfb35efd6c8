-- The pipeline a database belongs to. A pipeline is named in its config (`name:`, else the
-- config file's stem); the runner records the name here on a database's first run and
-- refuses a run of another pipeline against it (unless told to take it over), so two
-- pipelines never write over each other's state. Each run records its pipeline too: drift
-- compares a run with earlier runs of the same pipeline only (65_profile/069), and the
-- run's finished report is kept with it (what the Python API's latest_report reads).
-- grain: meta.pipeline one row (the owner); meta.runs gains pipeline and report
-- requires: V004__create_meta_tables.sql (meta.runs), V011__create_roles.sql

CREATE TABLE IF NOT EXISTS meta.pipeline (
    only_row boolean NOT NULL DEFAULT TRUE,
    pipeline_name text NOT NULL,
    config_path text NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now(),
    claimed_by_run text NOT NULL,
    CONSTRAINT pipeline_pkey PRIMARY KEY (only_row),
    CONSTRAINT pipeline_only_row_check CHECK (only_row)
);

COMMENT ON TABLE meta.pipeline IS
'The pipeline that owns this database: a run of another pipeline is refused. '
'See scripts/db/pipelines.py.';

ALTER TABLE meta.runs ADD COLUMN IF NOT EXISTS pipeline text;
ALTER TABLE meta.runs ADD COLUMN IF NOT EXISTS report jsonb;

COMMENT ON COLUMN meta.runs.pipeline IS 'The pipeline (config name:) the run belonged to.';
COMMENT ON COLUMN meta.runs.report IS 'The run''s finished report (artifacts/reports/<run_id>.json).';

-- Like every derived table it belongs to the loader (V011); `make roles` hands it over
-- where this session may not.
DO $$
BEGIN
    IF to_regrole('raw_to_ready_loader') IS NOT NULL AND pg_has_role('raw_to_ready_loader', 'MEMBER') THEN
        ALTER TABLE meta.pipeline OWNER TO raw_to_ready_loader;
    END IF;
END
$$;
