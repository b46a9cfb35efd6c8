-- A run's list setting (raw_to_ready.work_files: comma-separated sha256) as an array that
-- the planner folds into a constant when it plans a statement. It reads a setting, yet is
-- marked IMMUTABLE: PostgreSQL then calls it once, while planning, and the statement runs
-- with a constant list, which an index scans for a daily file and a hash looks up for many
-- files. string_to_array(current_setting(...)) is evaluated again for every row instead:
-- 38 s for a million raw events of 730 files, against 0.2 s. So only for statements
-- planned after the setting is set and run once, as the stage files are: never in a view,
-- an index, a default or a function body, whose plans outlive the setting.
-- grain: none (a function)
-- requires: V001__create_layer_schemas.sql (the meta schema)

-- On Citus the function stays on the coordinator (as meta.set_run_setting does): the stage
-- files read the list there in a form that the workers evaluate themselves.
SELECT set_config('citus.enable_ddl_propagation', 'off', TRUE);

CREATE FUNCTION meta.setting_list(setting_name text)
RETURNS text[]
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
    SELECT string_to_array(current_setting(setting_name), ',')
$$;

COMMENT ON FUNCTION meta.setting_list(text) IS
'The comma-separated setting as text[]; IMMUTABLE so that a statement''s plan holds it as a '
'constant (only in statements planned after the setting is set).';

-- Like the stages' other functions, it belongs to the loader (V011); `make roles` (V011
-- again) hands it over where this session may not.
DO $$
BEGIN
    IF to_regrole('raw_to_ready_loader') IS NOT NULL AND pg_has_role('raw_to_ready_loader', 'MEMBER') THEN
        ALTER FUNCTION meta.setting_list(text) OWNER TO raw_to_ready_loader;
    END IF;
END
$$;
