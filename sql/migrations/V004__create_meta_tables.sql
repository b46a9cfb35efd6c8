-- Creates the run log, validation history, split tables and the feature registry.
-- grain: meta.runs one row per run; meta.run_stages one row per stage of a run;
--        meta.validation_results one row per check per run;
--        meta.validation_failures one row per failing record per check per run (capped);
--        meta.dataset_splits one row per feature row (latest run);
--        meta.split_cutoffs one row per split per run;
--        meta.feature_registry one row per successful run
-- requires: V001__create_layer_schemas.sql
CREATE TABLE meta.runs (
    run_id text COLLATE "C" NOT NULL,
    config_path text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    status text NOT NULL DEFAULT 'running',
    exit_code integer,
    CONSTRAINT runs_pkey PRIMARY KEY (run_id),
    CONSTRAINT runs_status_check CHECK (status IN ('running', 'passed', 'failed', 'error'))
);

CREATE TABLE meta.run_stages (
    run_id text COLLATE "C" NOT NULL,
    stage text NOT NULL,
    status text NOT NULL,
    row_count bigint,
    seconds numeric(12, 3),
    sql_sha256 text,
    message text,
    finished_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT run_stages_pkey PRIMARY KEY (run_id, stage),
    CONSTRAINT run_stages_run_id_fkey FOREIGN KEY (run_id) REFERENCES meta.runs (run_id)
);

CREATE TABLE meta.validation_results (
    run_id text COLLATE "C" NOT NULL,
    check_id text NOT NULL,
    rule text NOT NULL,
    column_name text,
    severity text NOT NULL,
    status text NOT NULL,
    failing_count bigint NOT NULL,
    row_count bigint NOT NULL,
    failing_percent numeric(9, 4) NOT NULL,
    message text NOT NULL,
    checked_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT validation_results_pkey PRIMARY KEY (run_id, check_id),
    CONSTRAINT validation_results_status_check CHECK (status IN ('pass', 'warn', 'fail')),
    CONSTRAINT validation_results_severity_check CHECK (severity IN ('error', 'warn'))
);

-- Append-only history of offending records, never overwritten (capped per check; the
-- exact count is in meta.validation_results).
CREATE TABLE meta.validation_failures (
    failure_id bigint GENERATED ALWAYS AS IDENTITY,
    run_id text COLLATE "C" NOT NULL,
    check_id text NOT NULL,
    event_id bigint,
    file_path text,
    line_number bigint,
    failing_value text,
    payload jsonb,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT validation_failures_pkey PRIMARY KEY (failure_id)
);

CREATE INDEX validation_failures_run_id_check_id_idx
ON meta.validation_failures (run_id, check_id);

-- Unlogged: derived from feats.customer_features and rebuilt by every run (emptied
-- after a crash, refilled by the next run).
CREATE UNLOGGED TABLE meta.dataset_splits (
    customer_id text COLLATE "C" NOT NULL,
    feature_time timestamptz NOT NULL,
    split text NOT NULL,
    run_id text COLLATE "C" NOT NULL,
    CONSTRAINT dataset_splits_pkey PRIMARY KEY (customer_id, feature_time),
    CONSTRAINT dataset_splits_split_check CHECK (split IN ('train', 'val', 'test'))
);

CREATE TABLE meta.split_cutoffs (
    run_id text COLLATE "C" NOT NULL,
    split text NOT NULL,
    starts_at timestamptz,
    ends_before timestamptz,
    row_count bigint NOT NULL,
    gap_row_count bigint NOT NULL,
    fraction numeric(7, 5) NOT NULL,
    target_fraction numeric NOT NULL,
    CONSTRAINT split_cutoffs_pkey PRIMARY KEY (run_id, split)
);

CREATE TABLE meta.feature_registry (
    run_id text COLLATE "C" NOT NULL,
    feature_version text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    git_commit text,
    config_sha256 jsonb NOT NULL,
    sql_sha256 jsonb NOT NULL,
    source_sha256 jsonb NOT NULL,
    feature_columns jsonb NOT NULL,
    row_counts jsonb NOT NULL,
    split_cutoffs jsonb NOT NULL,
    validation_passed boolean NOT NULL,
    CONSTRAINT feature_registry_pkey PRIMARY KEY (run_id)
);

CREATE INDEX feature_registry_feature_version_idx
ON meta.feature_registry (feature_version);
