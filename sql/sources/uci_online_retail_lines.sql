{%- import 'macros/rules.sql' as rules -%}
-- Lines model for the UCI "Online Retail" export: one row per invoice line. The orders
-- model (uci_online_retail.sql) sums the same lines into its invoices, so both read the
-- lines as this file defines them.
-- grain: one row per invoice line (a record repeated verbatim is one line)
-- requires: the source's raw events (source_events), as for the orders model
-- Semantics (docs/sources.md, "UCI Online Retail"):
--   order_id    = InvoiceNo (A... "Adjust bad debt" rows are no customer's lines)
--   line_number = the line's place in its invoice: file order, then record order
--   item        = StockCode (POST, M, DOT... are postage, manual and fee lines: items too)
--   quantity    = Quantity (negative on a cancellation), unit_price = UnitPrice
--   amount      = quantity * unit_price, unrounded
-- and, for the orders model: customer_id, line_at, country and the line's lineage.
WITH invoice_lines AS (
    -- a record repeated verbatim is one line delivered twice: keep its first copy
    SELECT DISTINCT ON (e.payload)
        {{ rules.trimmed("e.payload ->> 'InvoiceNo'") }} AS invoice_no,
        nullif(
            regexp_replace({{ rules.trimmed("e.payload ->> 'CustomerID'") }}, '\.0+$', ''), ''
        ) AS customer_id,
        (e.payload ->> 'InvoiceDate')::timestamptz AS line_at,
        {{ rules.trimmed("e.payload ->> 'StockCode'") }} AS stock_code,
        (e.payload ->> 'Quantity')::numeric AS quantity,
        (e.payload ->> 'UnitPrice')::numeric AS unit_price,
        nullif({{ rules.trimmed("e.payload ->> 'Country'") }}, '') AS country,
        e.event_id,
        e.file_sha256,
        e.line_number AS file_line_number,
        e.file_position,
        e.record_number
    FROM {{ source_events }} AS e
    ORDER BY e.payload, e.file_position, e.record_number
)

SELECT
    l.invoice_no AS order_id,
    l.stock_code AS item,
    l.quantity,
    l.unit_price,
    l.customer_id,
    l.line_at,
    l.country,
    l.event_id,
    l.file_sha256,
    l.file_line_number,
    l.file_position,
    l.record_number,
    l.quantity * l.unit_price AS amount,
    row_number() OVER (PARTITION BY l.invoice_no ORDER BY l.file_position, l.record_number) AS line_number
FROM invoice_lines AS l
-- bad-debt adjustments move money between ledgers; no customer ordered anything
WHERE l.invoice_no NOT LIKE 'A%'
