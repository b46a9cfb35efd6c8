-- Counts, per split, the rows purged because their label window reaches a later split and
-- the rows whose label is censored (its window ends after the data's observed end).
-- grain: columns only (meta.split_cutoffs stays one row per split per run)
-- requires: V004__create_meta_tables.sql
ALTER TABLE meta.split_cutoffs
ADD COLUMN purged_row_count bigint NOT NULL DEFAULT 0,
ADD COLUMN censored_row_count bigint NOT NULL DEFAULT 0;

COMMENT ON COLUMN meta.split_cutoffs.purged_row_count IS
'Rows of the split''s time span left out because their label window (t, t + horizon] reaches '
'the start of a later split (the purge of purged cross-validation).';
COMMENT ON COLUMN meta.split_cutoffs.censored_row_count IS
'Rows of the split whose label window ends after the observed end of the data: no label, '
'so they are in no training set.';
