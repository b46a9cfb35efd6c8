{%- import 'macros/versions.sql' as versions -%}
{%- import 'macros/distribution.sql' as dist with context -%}
{%- import 'macros/sources.sql' as sources -%}
-- Runs every source's model over its batch and keeps the orders they produce in
-- stg.model_orders, for the order-level checks (038) and the merge into stg.orders (040).
-- grain: one row per order a source model produced in this run
-- requires: 30_validate/030_validate_expectations.sql and 033_validate_quarantine.sql passed
--           for this batch (the runner stops before this stage otherwise),
--           V006__create_quarantine.sql (meta.quarantine), the models of sql/sources/
-- writes: stg.model_orders
-- settings: raw_to_ready.run_id, raw_to_ready.full_refresh, raw_to_ready.work_files,
--           raw_to_ready.removed_files
-- Incremental (full_refresh off): the models read the new files only (work_files), which
-- equals a full rebuild as long as no order of theirs is staged already. An order delivered
-- again in a new file (or an invoice continued in one) ends this file with SQLSTATE R2R01,
-- and the runner runs the gates again as a full refresh.
-- Naive source timestamps are read in the configured source time zone; timestamps
-- with an explicit offset keep it. Either way order_at is an absolute instant.
SELECT meta.set_run_setting('timezone', {{ staging.source_timezone | literal }});
-- Ambiguous dates (01/02/2024) are read in the configured order, never the server's.
SELECT meta.set_run_setting('datestyle', {{ ('ISO, ' ~ staging.date_order) | literal }});
-- Casting, sorting and grouping a million records wants memory, not temporary files.
SELECT meta.set_run_setting('work_mem', '512MB');
-- Parallel workers hand their rows to the leader in memory: at the default cost per row (0.1)
-- the planner reads and casts a million raw events in one process (2.2 s), not on every
-- core (1.4 s on two).
SELECT meta.set_run_setting('parallel_tuple_cost', '0.01');
{%- if distribution %}
-- Citus: a model's DISTINCT ON (order_id) over raw events sharded by event runs on the
-- coordinator, which receives the batch's typed records (1.5 GB at 10M orders) whatever
-- Citus' default cap on such intermediate results (1 GB)
SELECT meta.set_run_setting('citus.max_intermediate_result_size', '-1');
{%- endif %}

-- Unlogged: rebuilt by every run from raw.raw_events. CREATE TABLE AS (not INSERT) so
-- that PostgreSQL may scan and cast the batch with parallel workers (on Citus: sharded
-- like stg.orders, by customer_key).
{% call dist.scratch_table('stg.model_orders', 'customer_key', rows='orders the source models produced') -%}
{%- for model in models %}
-- source {{ model.source_name }}: the model {{ model.path }}
SELECT
    {{ model.source_name | literal }}::text AS source_name,
    -- the contract's types, so that every model's rows fit one table
    m.order_id::text COLLATE "C" AS order_id,  -- noqa: RF01, RF03
    m.customer_id::text COLLATE "C" AS customer_id,  -- noqa: RF01, RF03
    m.order_at::timestamptz AS order_at,
    m.amount::numeric AS amount,
    m.status::text AS status,
    m.source_event_id::bigint AS source_event_id,
    m.file_sha256::text COLLATE "C" AS file_sha256,  -- noqa: RF01, RF03
    -- then staging.attributes, each of its type
    m.line_number::bigint AS line_number{{ sources.attribute_list(staging, 'm', cast=true) }},
    current_setting('raw_to_ready.run_id')::text AS run_id,
    -- stg.orders' customer_key (V016): the customer, or the order when it has none
    coalesce(m.customer_id::text, m.order_id::text, '') COLLATE "C" AS customer_key  -- noqa: RF01, RF03
FROM (
    {{ model.sql | indent(4) }}
) AS m
{%- if not loop.last %}
UNION ALL
{%- endif %}
{%- endfor %}
{%- endcall %}

COMMENT ON TABLE stg.model_orders IS
'The orders the source models produced in the latest run, checked by the order-level rules '
'before the merge into stg.orders. See sql/sources/ and sql/37_model/037_model_orders.sql.';

-- Fresh statistics for the checks' and the merge's plans.
ANALYZE stg.model_orders;

-- Incremental runs only: an order of the new files that is staged already needs the full
-- picture (the batch's records of that order in every file). An order staged from a file
-- this run removes (a corrected file replacing it) is not a repeat: it changes.
DO $$
DECLARE
    repeated record;
BEGIN
    IF NOT {{ versions.full_refresh() }} THEN
{% if distribution %}
        -- Citus: the batch's order ids, found once and sent to every shard, which looks
        -- them up in its order id index (orders are sharded by customer, and an order's
        -- customer may have changed)
        SELECT o.order_id, o.file_sha256 INTO repeated
        FROM stg.orders AS o
        WHERE
            o.order_id IN (SELECT b.order_id FROM stg.model_orders AS b)
            AND o.file_sha256 <> ALL({{ versions.removed_files() }})
        LIMIT 1;
{% else %}
        SELECT b.order_id, o.file_sha256 INTO repeated
        FROM stg.model_orders AS b
        INNER JOIN stg.orders AS o ON b.order_id = o.order_id
        WHERE o.file_sha256 <> ALL({{ versions.removed_files() }})
        LIMIT 1;
{% endif %}
        IF FOUND THEN
            RAISE EXCEPTION 'order % of a new file is staged already (from file %)',
                repeated.order_id, repeated.file_sha256
                USING ERRCODE = 'R2R01', HINT = 'an incremental run cannot add to a staged order: a full refresh can';
        END IF;
    END IF;
END
$$;
