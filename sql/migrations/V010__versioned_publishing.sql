-- Versioned, atomic publishing and the bookkeeping of incremental runs.
-- grain: tables and views (see each comment)
-- requires: V003__create_stg_orders.sql, V004__create_meta_tables.sql
-- Every derived row now carries the range of versions it belongs to: valid from version
-- valid_from until (not including) version valid_to, NULL while it is current. A run writes
-- only the rows that changed, under the next version number; the registry stage publishes
-- that version by inserting its meta.feature_versions row, in one short transaction. The
-- names users query (feats.customer_features, meta.dataset_splits, ...) are views showing
-- the latest published version, so a view built on them survives runs.

-- Scratch tables of a run: rebuilt by the run that needs them, never read by users.
CREATE SCHEMA work;

COMMENT ON SCHEMA work IS
'Scratch tables of a pipeline run (stg.model_orders lives in stg for its users); never published.';

-- One row per published version; the latest row is what the stable views show.
CREATE TABLE meta.feature_versions (
    version_number bigint NOT NULL,
    feature_version text NOT NULL,
    run_id text COLLATE "C" NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    -- what the configs and SQL (not the data) hash to: a run under another definition
    -- rebuilds everything instead of adding to this version
    definition_sha256 text NOT NULL,
    -- the labels' observed end in this version: a run moving it relabels the rows between
    observed_end timestamptz,
    -- set when retention drops the version: its rows are deleted, its registry rows stay
    dropped_at timestamptz,
    CONSTRAINT feature_versions_pkey PRIMARY KEY (version_number)
);

CREATE INDEX feature_versions_feature_version_idx
ON meta.feature_versions (feature_version);

COMMENT ON TABLE meta.feature_versions IS
'Published versions of the features, labels and splits; the latest is current. Retention '
'(retention.versions) drops older ones: dropped_at is set and their rows are deleted.';

ALTER TABLE meta.feature_registry
ADD COLUMN version_number bigint;

COMMENT ON COLUMN meta.feature_registry.version_number IS
'The published version (meta.feature_versions) the run''s feature set is; a run that changed '
'nothing names the version it found.';

-- The files whose orders are in stg.orders, and under which definition they were staged.
CREATE TABLE stg.staged_files (
    file_sha256 text COLLATE "C" NOT NULL,
    definition_sha256 text NOT NULL,
    staged_run_id text COLLATE "C" NOT NULL,
    CONSTRAINT staged_files_pkey PRIMARY KEY (file_sha256)
);

-- What staging changed and the derived layers have not caught up with: per version, the
-- customers whose orders changed and the earliest instant that changed. A NULL customer
-- means every customer (a full refresh). Consumed (deleted) when the version is published,
-- so a run killed after staging leaves its changes for the next run.
CREATE TABLE stg.order_changes (
    version_number bigint NOT NULL,
    customer_id text COLLATE "C",
    changed_at timestamptz
);

CREATE INDEX order_changes_version_number_idx
ON stg.order_changes (version_number);

-- The labels' observed end is the latest staged order: one index probe, not a scan.
CREATE INDEX orders_order_at_idx
ON stg.orders (order_at);

-- The splits become versioned rows; meta.dataset_splits is a view (070 creates it).
-- Derived data: the next run rebuilds it, so the old table is dropped, not converted.
DROP TABLE meta.dataset_splits;

CREATE TABLE meta.dataset_split_history (
    customer_id text COLLATE "C" NOT NULL,
    feature_time timestamptz NOT NULL,
    -- gap and purged rows are kept too (the view leaves them out): a later run moves only
    -- the rows whose split changes
    split text NOT NULL,
    is_censored boolean NOT NULL,
    valid_from bigint NOT NULL,
    valid_to bigint,
    CONSTRAINT dataset_split_history_split_check CHECK (split IN ('train', 'val', 'test', 'gap', 'purged'))
);

CREATE UNIQUE INDEX dataset_split_history_current_idx
ON meta.dataset_split_history (customer_id, feature_time) WHERE valid_to IS NULL;

CREATE INDEX dataset_split_history_valid_from_idx
ON meta.dataset_split_history (valid_from);

CREATE INDEX dataset_split_history_valid_to_idx
ON meta.dataset_split_history (valid_to) WHERE valid_to IS NOT NULL;

COMMENT ON TABLE meta.dataset_split_history IS
'Every feature row''s split in every retained version (valid_from <= v < valid_to). '
'Query meta.dataset_splits (the current version) or meta.dataset_splits_versions.';

-- A daily run adds what changed to the published version's split counts; the purge check
-- needs the purged rows that have a label among them.
ALTER TABLE meta.split_cutoffs
ADD COLUMN purged_labelled_row_count bigint NOT NULL DEFAULT 0;

COMMENT ON COLUMN meta.split_cutoffs.purged_labelled_row_count IS
'Purged rows of the split''s span that are not censored (they had a label to leak).';

-- Feature, label and training-set tables of earlier releases: derived data, rebuilt as
-- versioned tables and views by the next run (their columns follow the config).
DROP TABLE IF EXISTS feats.training_set;
DROP TABLE IF EXISTS feats.customer_labels;
DROP TABLE IF EXISTS feats.customer_features;
