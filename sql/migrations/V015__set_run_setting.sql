-- One way to set a run's transaction-local settings (raw_to_ready.run_id and the rest, the
-- time zone, work_mem) that reaches every server the statements run on: a SET LOCAL
-- statement. set_config(…, TRUE) sets the same value on this server only, and on Citus
-- (issue 11) a query that a worker runs then finds no raw_to_ready.* setting, or the
-- worker's own time zone; Citus forwards a SET LOCAL (citus.propagate_set_commands =
-- 'local') to its connections to the workers, and this function's SET LOCAL too. On a
-- single server the two are the same. The value is a parameter, quoted here by format().
-- grain: none (a function)
-- requires: V001__create_layer_schemas.sql (the meta schema)

-- On Citus the function stays on the coordinator, where it is called (a SELECT of no
-- table runs there): Citus would otherwise create it on every worker, over connections
-- made as the owner role, which may not log in. On a single server this sets a custom
-- setting nothing reads. (A coordinator setting: set_config is the right tool here.)
SELECT set_config('citus.enable_ddl_propagation', 'off', TRUE);

CREATE FUNCTION meta.set_run_setting(setting_name text, setting_value text)
RETURNS text
LANGUAGE plpgsql
AS $$
BEGIN
    -- a name is a (dotted) identifier: nothing else gets into the statement
    IF setting_name !~ '^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$' THEN
        RAISE EXCEPTION 'meta.set_run_setting: % is not a setting name', quote_literal(setting_name)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF setting_value IS NULL THEN
        RAISE EXCEPTION 'meta.set_run_setting: % has no value (NULL)', setting_name
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    EXECUTE format('SET LOCAL %s = %L', setting_name, setting_value);
    RETURN setting_value;
END
$$;

COMMENT ON FUNCTION meta.set_run_setting(text, text) IS
'SET LOCAL setting_name = setting_value (the value quoted): the run''s settings, forwarded by Citus to its workers.';

-- Like the stages' other functions, it belongs to the loader (V011); `make roles` (V011
-- again) hands it over where this session may not.
DO $$
BEGIN
    IF to_regrole('raw_to_ready_loader') IS NOT NULL AND pg_has_role('raw_to_ready_loader', 'MEMBER') THEN
        ALTER FUNCTION meta.set_run_setting(text, text) OWNER TO raw_to_ready_loader;
    END IF;
END
$$;
