{%- import 'macros/rules.sql' as rules -%}
{%- import 'macros/sources.sql' as sources -%}
-- The default source model: one record per order, the canonical columns mapped from the
-- source's columns by the config (columns:). Exact repeats of a record collapse; with
-- unique relaxed, the record latest in the batch wins.
-- grain: one row per order_id
-- requires: the source's raw events (source_events: its files in this run, quarantined
--           records left out); the record-level checks passed
-- A source model is a SELECT producing order_id, customer_id, order_at, amount, status
-- and the lineage of the order's record: source_event_id, file_sha256, line_number; then
-- staging.attributes, each read from its source column (columns:) as its type.
WITH typed_orders AS (
    SELECT
        -- ids compare byte-wise (the "C" collation): faster sorts, no locale surprises;
        -- sqlfluff reads a collation name as a column, hence the noqa
        {{ rules.trimmed('e.payload ->> ' ~ (columns.order_id | literal)) }}
        COLLATE "C" AS order_id,  -- noqa: RF01, RF03
        nullif({{ rules.trimmed('e.payload ->> ' ~ (columns.customer_id | literal)) }}, '')
        COLLATE "C" AS customer_id,  -- noqa: RF01, RF03
        (e.payload ->> {{ columns.order_ts | literal }})::timestamptz AS order_at,
        round((e.payload ->> {{ columns.amount | literal }})::numeric, {{ staging.amount_scale | literal }}) AS amount,
        {%- if columns.status %}
        -- status variants map to a standard status; anything else is trimmed and lower-cased
        coalesce(
            {{ status_map_json | literal }}::jsonb
            ->> lower({{ rules.trimmed('e.payload ->> ' ~ (columns.status | literal)) }}),
            nullif(lower({{ rules.trimmed('e.payload ->> ' ~ (columns.status | literal)) }}), '')
        ) AS status,
        {%- else %}
        NULL::text AS status,
        {%- endif %}
        {{- sources.attribute_reads(staging, columns, 'e.payload') }}
        e.event_id AS source_event_id,
        e.file_sha256,
        e.line_number,
        -- where the record stands in the batch: the file's place in the config, then
        -- the record's place in the file (not the order files happened to be ingested)
        e.file_position,
        e.record_number
    FROM {{ source_events }} AS e
)

-- validation allows only exact repeats of an order (unless unique was relaxed); the
-- record latest in the batch wins, so the same named files always give the same row
SELECT DISTINCT ON (t.order_id)
    t.order_id,
    t.customer_id,
    t.order_at,
    t.amount,
    t.status,
    t.source_event_id,
    t.file_sha256,
    t.line_number{{ sources.attribute_list(staging, 't') }}
FROM typed_orders AS t
ORDER BY t.order_id ASC, t.file_position DESC, t.record_number DESC
