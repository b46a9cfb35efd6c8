-- Profiles of what each run saw, for drift between runs (issue 9): the batch (the orders
-- this run staged from its new files) and the features (the current version's rows, by
-- split, on a sample when there are many), and drift checks in the validation results.
-- grain: meta.profiles one row per (run, subject, column, split); work.profile_values one row
--        per profiled value of the latest run
-- requires: V004__create_meta_tables.sql, V006__create_quarantine.sql, V010 (the work schema)
CREATE TABLE meta.profiles (
    run_id text COLLATE "C" NOT NULL,
    -- batch: this run's staged orders; features: the version's feature rows;
    -- labels: the version's label rows
    subject text NOT NULL,
    column_name text NOT NULL,
    -- 'all', or the split of the feature rows ('train', 'val', 'test', 'gap', 'purged')
    split text NOT NULL DEFAULT 'all',
    row_count bigint NOT NULL,
    -- rows profiled: row_count, or the size of the sample
    profiled_row_count bigint NOT NULL,
    null_count bigint,
    distinct_count bigint,
    -- min, the 10th to 90th percentiles, max (numbers only)
    quantiles numeric[],
    -- the bins a later run's PSI compares in: this profile's distinct deciles as edges,
    -- and its rows per bin (one more count than edges)
    psi_edges numeric[],
    psi_counts bigint[],
    -- equal-width bins for the report's histograms
    histogram_edges numeric[],
    histogram_counts bigint[],
    -- a text column's values and their rows (the status); a label's outcomes
    value_counts jsonb,
    profiled_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT profiles_pkey PRIMARY KEY (run_id, subject, column_name, split),
    CONSTRAINT profiles_subject_check CHECK (subject IN ('batch', 'features', 'labels'))
);

COMMENT ON TABLE meta.profiles IS
'What each run profiled (batch orders, features, labels); drift checks compare a run with the previous successful one.';

-- Scratch: every number a run profiles, in long form (065 fills it, 066 counts it in the
-- baseline's bins, 070 empties it once the version is published).
CREATE UNLOGGED TABLE work.profile_values (
    subject text NOT NULL,
    column_name text NOT NULL,
    split text NOT NULL,
    measure numeric
);

-- A drift check measures a number and compares it with the baseline run's.
ALTER TABLE meta.validation_results
ADD COLUMN measured numeric,
ADD COLUMN baseline numeric,
DROP CONSTRAINT validation_results_level_check,
ADD CONSTRAINT validation_results_level_check CHECK (level IN ('records', 'orders', 'drift'));

-- Like every derived table, meta.profiles (and the scratch) belongs to the loader (V011: the stages write it);
-- `make roles` (V011 again) hands it over where this session may not.
DO $$
BEGIN
    IF to_regrole('raw_to_ready_loader') IS NOT NULL AND pg_has_role('raw_to_ready_loader', 'MEMBER') THEN
        ALTER TABLE meta.profiles OWNER TO raw_to_ready_loader;
        ALTER TABLE work.profile_values OWNER TO raw_to_ready_loader;
    END IF;
END
$$;
