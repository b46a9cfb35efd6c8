-- Creates the log of baseline model trainings (python -m scripts.train, make train): which
-- model was fitted on which feature_version and label, with which hyperparameters, how it
-- scored on val and test, and which file under artifacts/models/ holds it.
-- grain: one row per model kind per training (a training fits every kind on one
--        feature_version; its rows share a training_id)
-- requires: V004__create_meta_tables.sql (meta.feature_registry holds the versions)
CREATE TABLE meta.model_runs (
    model_run_id bigint GENERATED ALWAYS AS IDENTITY,
    training_id text COLLATE "C" NOT NULL,
    feature_version text NOT NULL,
    label_column text NOT NULL,
    model_kind text NOT NULL,
    params jsonb NOT NULL,
    metrics jsonb NOT NULL,
    model_path text,
    model_sha256 text,
    data_source text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT model_runs_pkey PRIMARY KEY (model_run_id),
    CONSTRAINT model_runs_training_id_model_kind_key UNIQUE (training_id, model_kind),
    CONSTRAINT model_runs_data_source_check CHECK (data_source IN ('parquet', 'postgresql')),
    -- a fitted model has its file; a naive baseline is its parameters alone
    CONSTRAINT model_runs_model_file_check CHECK ((model_path IS NULL) = (model_sha256 IS NULL))
);

CREATE INDEX model_runs_feature_version_idx
ON meta.model_runs (feature_version);

COMMENT ON TABLE meta.model_runs IS
'Baseline models per feature_version: params (hyperparameters chosen on val), metrics on val and on test '
'(evaluated once), the model file and its sha256. See scripts/train.py.';
