{%- import 'macros/rules.sql' as rules -%}
-- Source model for the UCI "Online Retail" export (and any line-grain export like it):
-- one record per invoice line, one order per invoice.
-- grain: one row per InvoiceNo
-- requires: the source's raw events (source_events: its files in this run, quarantined
--           records left out; lines without a CustomerID are quarantined by the config);
--           record-level types checks on Quantity, UnitPrice and InvoiceDate passed
-- Semantics (docs/sources.md, "UCI Online Retail"):
--   order_id    = InvoiceNo; a leading C marks a cancellation (status cancelled, a
--                 negative amount); A... "Adjust bad debt" rows are not customer orders
--   customer_id = CustomerID without the float export's ".0" (17850.0 -> 17850)
--   order_at    = the invoice's earliest line, InvoiceDate read in staging.source_timezone
--                 (Europe/London: naive UK local time, BST in summer)
--   amount      = sum of Quantity * UnitPrice over the invoice's lines, rounded to
--                 staging.amount_scale; a line repeated verbatim counts once
--   lineage     = the invoice's first line in the batch (file order, then line)
WITH invoice_lines AS (
    -- a record repeated verbatim is one line delivered twice: keep its first copy
    SELECT DISTINCT ON (e.payload)
        {{ rules.trimmed("e.payload ->> 'InvoiceNo'") }} AS invoice_no,
        nullif(
            regexp_replace({{ rules.trimmed("e.payload ->> 'CustomerID'") }}, '\.0+$', ''), ''
        ) AS customer_id,
        (e.payload ->> 'InvoiceDate')::timestamptz AS line_at,
        (e.payload ->> 'Quantity')::numeric * (e.payload ->> 'UnitPrice')::numeric AS line_amount,
        e.event_id,
        e.file_sha256,
        e.line_number,
        array_position({{ batch_file_sha256s | literal }}::text[], e.file_sha256) AS file_position,
        e.record_number
    FROM {{ source_events }} AS e
    ORDER BY e.payload, file_position, e.record_number
),

order_lines AS (
    SELECT *
    FROM invoice_lines
    -- bad-debt adjustments move money between ledgers; no customer ordered anything
    WHERE invoice_no NOT LIKE 'A%'
)

SELECT
    invoice_no COLLATE "C" AS order_id,  -- noqa: RF01, RF03
    min(customer_id) COLLATE "C" AS customer_id,  -- noqa: RF01, RF03
    min(line_at) AS order_at,
    round(sum(line_amount), {{ staging.amount_scale | literal }}) AS amount,
    CASE WHEN invoice_no LIKE 'C%' THEN 'cancelled' ELSE 'completed' END AS status,
    (array_agg(event_id ORDER BY file_position, record_number))[1] AS source_event_id,
    (array_agg(file_sha256 ORDER BY file_position, record_number))[1] AS file_sha256,
    (array_agg(line_number ORDER BY file_position, record_number))[1] AS line_number
FROM order_lines
GROUP BY invoice_no
