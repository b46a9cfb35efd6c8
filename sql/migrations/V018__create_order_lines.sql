-- stg.order_lines: the lines of the staged orders, for the features a config defines over
-- lines (features.define with source: lines). A source model may have a lines model
-- (sources[].lines_model) returning what each order's lines bought; staging keeps them
-- here with their order's customer and instant, merged with their orders
-- (40_stage/042_stg_order_lines.sql). Without a lines model the table stays empty.
-- grain: one row per (order, line_number)
-- requires: V001__create_layer_schemas.sql, V016__stg_orders_customer_key.sql (the
--           customer_key its rows are placed by), V011__create_roles.sql (the loader)
-- Keyed by the order's customer_key first, like stg.orders on Citus: the lines of a
-- customer lie with the customer's orders (sql/00_migrate/005_distribute_tables.sql).

CREATE TABLE IF NOT EXISTS stg.order_lines (
    customer_key text COLLATE "C" NOT NULL,
    order_id text COLLATE "C" NOT NULL,
    line_number bigint NOT NULL,
    customer_id text COLLATE "C",
    order_at timestamptz NOT NULL,
    item text,
    quantity numeric,
    unit_price numeric,
    amount numeric,
    staged_run_id text NOT NULL,
    CONSTRAINT order_lines_pkey PRIMARY KEY (customer_key, order_id, line_number)
);

COMMENT ON TABLE stg.order_lines IS
'The lines of the staged orders (a source''s lines model), with their order''s customer and '
'instant. See sql/40_stage/042_stg_order_lines.sql.';

-- Like every derived table it belongs to the loader (V011); `make roles` hands it over
-- where this session may not.
DO $$
BEGIN
    IF to_regrole('raw_to_ready_loader') IS NOT NULL AND pg_has_role('raw_to_ready_loader', 'MEMBER') THEN
        ALTER TABLE stg.order_lines OWNER TO raw_to_ready_loader;
    END IF;
END
$$;
