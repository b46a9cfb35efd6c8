{%- import 'macros/distribution.sql' as dist with context -%}
-- Runs every source's lines model (sources[].lines_model) over its batch and keeps the
-- lines with their order's customer and instant in stg.model_lines, for the merge into
-- stg.order_lines (40_stage/042). A line whose order its source's model did not produce,
-- or a line number given twice in one order, stops the stage: the lines model and the
-- orders model disagree. Without a lines model the table is made empty.
-- grain: one row per (order, line_number) a lines model produced in this run
-- requires: 37_model/037_model_orders.sql (stg.model_orders), the lines models of
--           sql/sources/
-- writes: stg.model_lines
-- settings: raw_to_ready.run_id, raw_to_ready.work_files
{%- if distribution %}
-- Citus: the lines are matched with their orders by order id, which is not how either is
-- sharded; the shards exchange them (a repartition join)
SELECT meta.set_run_setting('citus.enable_repartition_joins', 'on');
{%- endif %}

{% call dist.scratch_table('stg.model_lines', 'customer_key') -%}
SELECT
    -- a line without its order has no customer_key (and no order_at: the check below stops);
    -- a distribution column takes no NULL
    coalesce(b.customer_key, l.order_id, '') COLLATE "C" AS customer_key,  -- noqa: RF01, RF03
    l.order_id,
    l.line_number,
    b.customer_id,
    b.order_at,
    l.item,
    l.quantity,
    l.unit_price,
    l.amount,
    l.source_name
FROM (
    {%- for model in models if model.lines %}
    -- source {{ model.source_name }}: the lines model {{ model.lines.path }}
    SELECT
        {{ model.source_name | literal }}::text AS source_name,
        -- the contract's types (scripts/pipeline/models.py LINES_CONTRACT)
        m.order_id::text COLLATE "C" AS order_id,  -- noqa: RF01, RF03
        m.line_number::bigint AS line_number,
        m.item::text AS item,
        m.quantity::numeric AS quantity,
        m.unit_price::numeric AS unit_price,
        m.amount::numeric AS amount
    FROM (
        {{ model.lines.sql | indent(8) }}
    ) AS m
    UNION ALL
    {%- endfor %}
    -- the empty end of the list (the lines of a config without lines models)
    SELECT
        NULL::text AS source_name,
        NULL::text COLLATE "C" AS order_id,  -- noqa: RF01, RF03
        NULL::bigint AS line_number,
        NULL::text AS item,
        NULL::numeric AS quantity,
        NULL::numeric AS unit_price,
        NULL::numeric AS amount
    WHERE FALSE
) AS l
LEFT JOIN stg.model_orders AS b ON l.source_name = b.source_name AND l.order_id = b.order_id
{%- endcall %}

-- The lines models agree with the orders models: every line has its order, once per number.
DO $$
DECLARE
    bad record;
BEGIN
    SELECT l.source_name, l.order_id INTO bad
    FROM stg.model_lines AS l
    WHERE l.order_at IS NULL
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'the lines model of source % returned lines of order %, which its source model did not produce',
            bad.source_name, bad.order_id
            USING ERRCODE = 'R2R02', HINT = 'a lines model returns the lines of the orders its source model returns';
    END IF;
    SELECT l.source_name, l.order_id, l.line_number INTO bad
    FROM stg.model_lines AS l
    GROUP BY l.customer_key, l.source_name, l.order_id, l.line_number
    HAVING count(*) > 1
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'the lines model of source % returned line % of order % more than once',
            bad.source_name, bad.line_number, bad.order_id
            USING ERRCODE = 'R2R02', HINT = 'number the lines of an order uniquely (e.g. row_number())';
    END IF;
END
$$;

ANALYZE stg.model_lines;
