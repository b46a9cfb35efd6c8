-- The feature and label history tables, made here like every other base table (the
-- features and labels stages created them themselves until now). A migration knows no
-- config, so each is made with its key and its version range only; the stage adds the
-- value columns the config names (features.windows_days, labels.horizon_days: the
-- ensure_columns macro of sql/macros/versions.sql), and a new window adds its columns
-- there on a later run.
-- grain: feats.customer_feature_history one row per (customer_id, feature_time) per range
--        of versions; feats.customer_label_history the same for its labels
-- requires: V001__create_layer_schemas.sql, V010__versioned_publishing.sql (the version
--           ranges), V011__create_roles.sql (the loader that owns them)
-- A database made by an earlier version holds both tables (with their value columns and
-- these indexes) once a run wrote features and labels: IF NOT EXISTS leaves them as they are.
-- On Citus the stages distribute them once their value columns are added (Citus cannot add
-- an index to a distributed table from a multi-statement file).

CREATE TABLE IF NOT EXISTS feats.customer_feature_history (
    customer_id text COLLATE "C" NOT NULL,
    feature_time timestamptz NOT NULL,
    valid_from bigint NOT NULL,
    valid_to bigint
);

COMMENT ON TABLE feats.customer_feature_history IS
'Every customer feature row in every retained version (valid_from <= v < valid_to). '
'Query feats.customer_features (the current version) or feats.customer_features_versions.';

-- one current row per customer and instant
CREATE UNIQUE INDEX IF NOT EXISTS customer_feature_history_current_idx
ON feats.customer_feature_history (customer_id, feature_time) WHERE valid_to IS NULL;

-- the splits' cut-offs and bands read the current rows by time
CREATE INDEX IF NOT EXISTS customer_feature_history_time_idx
ON feats.customer_feature_history (feature_time) WHERE valid_to IS NULL;

-- the rows a version added and closed, and the retention's deletes
CREATE INDEX IF NOT EXISTS customer_feature_history_valid_from_idx
ON feats.customer_feature_history (valid_from);

CREATE INDEX IF NOT EXISTS customer_feature_history_valid_to_idx
ON feats.customer_feature_history (valid_to) WHERE valid_to IS NOT NULL;

CREATE TABLE IF NOT EXISTS feats.customer_label_history (
    customer_id text COLLATE "C" NOT NULL,
    feature_time timestamptz NOT NULL,
    valid_from bigint NOT NULL,
    valid_to bigint
);

COMMENT ON TABLE feats.customer_label_history IS
'Every label row in every retained version (valid_from <= v < valid_to); empty when the config has no labels. '
'Query feats.customer_labels (the current version) or feats.customer_labels_versions.';

CREATE UNIQUE INDEX IF NOT EXISTS customer_label_history_current_idx
ON feats.customer_label_history (customer_id, feature_time) WHERE valid_to IS NULL;

CREATE INDEX IF NOT EXISTS customer_label_history_valid_from_idx
ON feats.customer_label_history (valid_from);

CREATE INDEX IF NOT EXISTS customer_label_history_valid_to_idx
ON feats.customer_label_history (valid_to) WHERE valid_to IS NOT NULL;

-- Like every derived table, both belong to the loader (V011): the stages add their value
-- columns and drop and rebuild their indexes around a first load, which only an owner may.
-- `make roles` (V011 again) hands them over where this session may not.
DO $$
BEGIN
    IF to_regrole('raw_to_ready_loader') IS NOT NULL AND pg_has_role('raw_to_ready_loader', 'MEMBER') THEN
        ALTER TABLE feats.customer_feature_history OWNER TO raw_to_ready_loader;
        ALTER TABLE feats.customer_label_history OWNER TO raw_to_ready_loader;
    END IF;
END
$$;
