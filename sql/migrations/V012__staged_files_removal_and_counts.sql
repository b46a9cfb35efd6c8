-- Records, per staged file, what an incremental run needs to remove or replace it and to
-- count the staged orders without reading them.
-- holds_only_its_orders
--   true:  no other staged file holds any of its orders. A file staged by an incremental
--          run (037 stopped the run if a staged order was in it, and stops any later file
--          that repeats one of its orders), or the only file of a full refresh. Its
--          orders are then exactly the staged orders whose lineage is the file
--          (stg.orders.file_sha256): removing it removes those, replacing it changes them.
--   false: not known. A full refresh of several files does not record which of them share
--          orders (a source model decides what an order is); removing one is a full refresh.
-- order_count
--   the staged orders whose lineage is the file; their sum is the count of stg.orders
--   (the registry's stg_orders). NULL for a file staged before this migration.
-- grain: one row per staged file (stg.staged_files, V010)
-- requires: V010__versioned_publishing.sql
ALTER TABLE stg.staged_files
ADD COLUMN holds_only_its_orders boolean NOT NULL DEFAULT FALSE,
ADD COLUMN order_count bigint;

COMMENT ON COLUMN stg.staged_files.holds_only_its_orders IS
'true: no other staged file holds any of this file''s orders, so an incremental run may '
'remove or replace the file. See V012__staged_files_removal_and_counts.sql.';

COMMENT ON COLUMN stg.staged_files.order_count IS
'The staged orders whose lineage (stg.orders.file_sha256) is this file.';
