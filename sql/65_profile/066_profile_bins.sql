-- Bins the profiled numbers (65_profile/065): quantiles per column and split, the PSI bins
-- (the distinct deciles p10 .. p90 as edges: a later run counts its own values in these
-- same bins) and equal-width histogram bins, with the rows in each. Quantiles are
-- percentile_disc (values that occur).
-- grain: the temporary tables profile_quantiles (one row per subject, column and split),
--        profile_bins (one row per subject and column) and profile_bin_counts (one row per
--        subject, column and split)
-- requires: 65_profile/065_profile_values.sql (work.profile_values), in the same transaction
-- writes: nothing
-- Quantiles per column, per split and over all splits (a feature's 'all' row is the sum
-- of its splits; the batch has no split).
CREATE TEMPORARY TABLE profile_quantiles ON COMMIT DROP AS
SELECT
    v.subject,
    v.column_name,
    CASE WHEN grouping(v.split) = 1 THEN 'all' ELSE v.split END AS split,
    count(*) AS profiled_row_count,
    count(*) FILTER (WHERE v.measure IS NULL) AS null_count,
    count(DISTINCT v.measure) AS distinct_count,
    percentile_disc(ARRAY[0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1]::float8[])
    WITHIN GROUP (ORDER BY v.measure) AS quantiles,
    percentile_disc(0.99) WITHIN GROUP (ORDER BY v.measure) AS p99,
    -- every value a whole number (a count, not a share that happens to span 0 to 1)
    coalesce(bool_and(v.measure = trunc(v.measure)), FALSE) AS whole_numbers
FROM work.profile_values AS v
GROUP BY GROUPING SETS ((v.subject, v.column_name, v.split), (v.subject, v.column_name))
HAVING grouping(v.split) = 1 OR v.subject = 'features';

-- The bins, from the 'all' row: PSI edges (distinct deciles) and histogram edges (equal
-- widths from the minimum to the 99th percentile; a column of whole numbers only gets a bin
-- per number when there are at most 20 of them). The last histogram bin also holds what lies above its edge.
CREATE TEMPORARY TABLE profile_bins ON COMMIT DROP AS
SELECT
    q.subject,
    q.column_name,
    array(
        SELECT DISTINCT d.edge
        FROM unnest(q.quantiles[2:10]) AS d (edge)
        WHERE d.edge IS NOT NULL
        ORDER BY d.edge
    ) AS psi_edges,
    CASE
        WHEN q.quantiles[1] IS NULL THEN NULL
        WHEN q.p99 = q.quantiles[1] THEN ARRAY[q.quantiles[1] - 0.5, q.quantiles[1] + 0.5]
        WHEN
            q.p99 - q.quantiles[1] < 20 AND q.whole_numbers
            THEN array(
                    SELECT q.quantiles[1] - 0.5 + i
                    FROM generate_series(0, (q.p99 - q.quantiles[1])::integer + 1) AS i
                )
        ELSE array(
                SELECT q.quantiles[1] + (q.p99 - q.quantiles[1]) * i / 20
                FROM generate_series(0, 20) AS i
            )
    END AS histogram_edges
FROM profile_quantiles AS q
WHERE q.split = 'all';

-- Rows per bin, zero-filled: PSI bins over the whole column, histogram bins per split.
CREATE TEMPORARY TABLE profile_bin_counts ON COMMIT DROP AS
WITH binned AS (
    SELECT
        v.subject,
        v.column_name,
        v.split,
        width_bucket(v.measure, b.psi_edges) AS psi_bin,
        least(
            greatest(width_bucket(v.measure, b.histogram_edges), 1),
            cardinality(b.histogram_edges) - 1
        ) AS histogram_bin
    FROM work.profile_values AS v
    INNER JOIN profile_bins AS b
        ON v.subject = b.subject AND v.column_name = b.column_name
    WHERE v.measure IS NOT NULL
),

psi_counted AS (
    SELECT
        n.subject,
        n.column_name,
        n.psi_bin,
        count(*) AS row_count
    FROM binned AS n
    GROUP BY n.subject, n.column_name, n.psi_bin
),

histogram_counted AS (
    SELECT
        n.subject,
        n.column_name,
        CASE WHEN grouping(n.split) = 1 THEN 'all' ELSE n.split END AS split,
        n.histogram_bin,
        count(*) AS row_count
    FROM binned AS n
    GROUP BY
        GROUPING SETS (
            (n.subject, n.column_name, n.split, n.histogram_bin), (n.subject, n.column_name, n.histogram_bin)
        )
    HAVING grouping(n.split) = 1 OR n.subject = 'features'
),

psi AS (
    SELECT
        b.subject,
        b.column_name,
        array_agg(coalesce(c.row_count, 0) ORDER BY i.bin) AS psi_counts
    FROM profile_bins AS b
    CROSS JOIN LATERAL generate_series(0, cardinality(b.psi_edges)) AS i (bin)
    LEFT JOIN psi_counted AS c
        ON b.subject = c.subject AND b.column_name = c.column_name AND i.bin = c.psi_bin
    GROUP BY b.subject, b.column_name
),

histogram AS (
    SELECT
        q.subject,
        q.column_name,
        q.split,
        array_agg(coalesce(c.row_count, 0) ORDER BY i.bin) AS histogram_counts
    FROM profile_quantiles AS q
    INNER JOIN profile_bins AS b ON q.subject = b.subject AND q.column_name = b.column_name
    CROSS JOIN LATERAL generate_series(1, cardinality(b.histogram_edges) - 1) AS i (bin)
    LEFT JOIN histogram_counted AS c
        ON q.subject = c.subject AND q.column_name = c.column_name AND q.split = c.split AND i.bin = c.histogram_bin
    GROUP BY q.subject, q.column_name, q.split
)

SELECT
    h.subject,
    h.column_name,
    h.split,
    h.histogram_counts,
    CASE WHEN h.split = 'all' THEN p.psi_counts END AS psi_counts
FROM histogram AS h
INNER JOIN psi AS p ON h.subject = p.subject AND h.column_name = p.column_name;
