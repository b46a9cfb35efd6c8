-- Creates the staging table of typed, standardized, deduplicated orders.
-- grain: one row per order_id
-- requires: V001__create_layer_schemas.sql
CREATE TABLE stg.orders (
    order_id text COLLATE "C" NOT NULL,
    customer_id text COLLATE "C",
    order_at timestamptz NOT NULL,
    amount numeric,
    status text,
    source_event_id bigint NOT NULL,
    file_sha256 text COLLATE "C" NOT NULL,
    line_number bigint NOT NULL,
    staged_run_id text NOT NULL,
    staged_at timestamptz NOT NULL,
    CONSTRAINT orders_pkey PRIMARY KEY (order_id)
);

COMMENT ON TABLE stg.orders IS
'Typed orders: ids trimmed, status trimmed, lower-cased and mapped, order_at in UTC, '
'amount rounded to the configured scale. Lineage points at the raw event it came from.';
