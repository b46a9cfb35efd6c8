{%- import 'macros/rules.sql' as rules -%}
-- Types, standardizes and deduplicates the batch into stg.orders: adds new orders,
-- updates changed ones, removes those no named file holds; an unchanged order is left
-- as it is.
-- grain: one row per order_id
-- requires: 030_validate_expectations.sql passed for this batch (the runner stops
--           before this file otherwise), V003__create_stg_orders.sql
-- settings: raw_to_ready.run_id
-- Naive source timestamps are read in the configured source time zone; timestamps
-- with an explicit offset keep it. Either way order_at is an absolute instant.
SET LOCAL timezone = {{ staging.source_timezone | literal }};
-- Ambiguous dates (01/02/2024) are read in the configured order, never the server's.
SET LOCAL datestyle = {{ ('ISO, ' ~ staging.date_order) | literal }};

-- Casting and sorting a million records wants memory, not temporary files.
SET LOCAL work_mem = '512MB';

-- The batch, typed and deduplicated once (CREATE TABLE AS may scan in parallel).
CREATE TEMPORARY TABLE staged_batch ON COMMIT DROP AS
WITH batch_events AS (
    SELECT
        e.event_id,
        e.file_sha256,
        e.line_number,
        e.record_number,
        e.payload
    FROM raw.raw_events AS e
    WHERE e.file_sha256 = ANY({{ batch_file_sha256s | literal }}::text[])
),

typed_orders AS (
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
        e.event_id AS source_event_id,
        e.file_sha256,
        e.line_number,
        -- where the record stands in the batch: the file's place in the config, then
        -- the record's place in the file (not the order files happened to be ingested)
        array_position({{ batch_file_sha256s | literal }}::text[], e.file_sha256) AS file_position,
        e.record_number
    FROM batch_events AS e
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
    t.line_number
FROM typed_orders AS t
ORDER BY t.order_id ASC, t.file_position DESC, t.record_number DESC;

-- A temporary table has no statistics until analyzed; the joins below need them.
ANALYZE staged_batch;

-- Orders that are in no file the config names any more leave staging: stg.orders holds
-- exactly the batch, so the features (and their version) follow from the named files
-- alone. Their raw events stay in raw.raw_events.
DELETE FROM stg.orders AS o
WHERE NOT EXISTS (
        SELECT 1
        FROM staged_batch AS b
        WHERE b.order_id = o.order_id
    );

-- One join adds new orders and updates changed ones: a changed order (new values, or
-- the same values now from another record) takes the new values and lineage; an
-- unchanged one keeps its row untouched.
MERGE INTO stg.orders AS o
USING staged_batch AS b
    ON o.order_id = b.order_id
WHEN MATCHED
AND (o.customer_id, o.order_at, o.amount, o.status, o.source_event_id)
IS DISTINCT FROM (b.customer_id, b.order_at, b.amount, b.status, b.source_event_id)
THEN
    UPDATE
        SET
            customer_id = b.customer_id,
            order_at = b.order_at,
            amount = b.amount,
            status = b.status,
            source_event_id = b.source_event_id,
            file_sha256 = b.file_sha256,
            line_number = b.line_number,
            staged_run_id = current_setting('raw_to_ready.run_id'),
            staged_at = transaction_timestamp()
WHEN NOT MATCHED
THEN INSERT (
    order_id, customer_id, order_at, amount, status,
    source_event_id, file_sha256, line_number, staged_run_id, staged_at
)
VALUES (
    b.order_id, b.customer_id, b.order_at, b.amount, b.status,
    b.source_event_id, b.file_sha256, b.line_number,
    current_setting('raw_to_ready.run_id'), transaction_timestamp()
);

-- Fresh statistics for the features stage's plan.
ANALYZE stg.orders;
