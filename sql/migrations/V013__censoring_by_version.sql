-- Censoring becomes a property of a row in a version, computed by the views from the
-- version's observed end (meta.feature_versions.observed_end), instead of a stored column:
-- when the observed end moves by a day, a day of history rows stops being censored, and
-- storing that meant rewriting those rows in the label and split history on every daily
-- run (13.7k rows of each at 10M orders), whatever the new data was.
-- Derived data: the next run (a full refresh, as the SQL changed) recomputes the label
-- values without the mask; rows of retained versions keep theirs (NULL where censored,
-- which the views mask anyway).
-- grain: the label and split history tables (V010, 055)
-- requires: V010__versioned_publishing.sql
-- The views that read the column go first; 070 creates them again when it publishes.
DROP VIEW IF EXISTS feats.training_set_versions;
DROP VIEW IF EXISTS feats.training_set;
DROP VIEW IF EXISTS feats.customer_labels_versions;
DROP VIEW IF EXISTS feats.customer_labels;

ALTER TABLE IF EXISTS feats.customer_label_history
DROP COLUMN IF EXISTS is_censored;

ALTER TABLE meta.dataset_split_history
DROP COLUMN is_censored;
