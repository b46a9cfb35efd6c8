{%- import 'macros/results.sql' as results with context -%}
-- Drift checks: this run's profile (065, 067) against the baseline, the latest earlier run of
-- the same pipeline that passed and left a profile. Writes one row per drift check to
-- meta.validation_results (level 'drift') with what it measured and the baseline's value:
--   row_count        |change| of the batch's orders against the baseline's batch, in %
--   null_rate.<col>  |change| of a batch column's null rate, in percentage points
--   psi.<col>        population stability index of the batch's amount or of a feature:
--                    sum over bins of (a - e) * ln(a / e), a and e the shares of this run's
--                    and the baseline's values in the baseline's decile bins (a share of 0
--                    counts as 0.0001, so that an empty bin does not make it infinite)
-- With no baseline (the first run), or nothing to compare (no new orders in this run or in
-- the baseline's), a check passes and says so.
-- grain: one row per drift check (meta.validation_results) for this run
-- requires: 65_profile/065_profile_values.sql (work.profile_values), 65_profile/067_profiles.sql
--           (meta.profiles), V014__create_profiles.sql
-- writes: meta.validation_results
-- settings: raw_to_ready.run_id
{#- A drift check's one measure: what it compares, the batch or the features. -#}
{%- macro drift_subject(check) -%}
{{ check.params.subject | literal }}
{%- endmacro -%}
{#- A drift `value` beyond a threshold (`op` '>' or '>='; no threshold: never). -#}
{%- macro exceeds(value, op, threshold) -%}
coalesce(CASE {{ op }} WHEN '>' THEN {{ value }} > {{ threshold }} WHEN '>=' THEN {{ value }} >= {{ threshold }} END, FALSE)
{%- endmacro %}
DELETE FROM meta.validation_results
WHERE run_id = current_setting('raw_to_ready.run_id') AND level = 'drift';

CREATE TEMPORARY TABLE drift_baseline_run ON COMMIT DROP AS
SELECT r.run_id
FROM meta.runs AS r
WHERE
    r.status = 'passed'
    AND r.pipeline = current_setting('raw_to_ready.pipeline')
    AND r.run_id != current_setting('raw_to_ready.run_id')
    AND EXISTS (
        SELECT 1 FROM meta.profiles AS p
        WHERE p.run_id = r.run_id
    )
ORDER BY r.started_at DESC, r.run_id DESC
LIMIT 1;

-- PSI of every binned column the baseline has, over the baseline's bins.
CREATE TEMPORARY TABLE drift_psi ON COMMIT DROP AS
WITH baseline AS (
    SELECT
        p.subject,
        p.column_name,
        p.psi_edges,
        p.psi_counts,
        (SELECT sum(n.bin_rows) FROM unnest(p.psi_counts) AS n (bin_rows)) AS total_rows
    FROM meta.profiles AS p
    INNER JOIN drift_baseline_run AS r ON p.run_id = r.run_id
    WHERE p.split = 'all' AND p.psi_counts IS NOT NULL
),

current_bins AS (
    SELECT
        v.subject,
        v.column_name,
        width_bucket(v.measure, b.psi_edges) AS bin,
        count(*) AS bin_rows
    FROM work.profile_values AS v
    INNER JOIN baseline AS b ON v.subject = b.subject AND v.column_name = b.column_name
    WHERE v.measure IS NOT NULL
    GROUP BY v.subject, v.column_name, width_bucket(v.measure, b.psi_edges)
),

current_totals AS (
    SELECT
        c.subject,
        c.column_name,
        sum(c.bin_rows) AS total_rows
    FROM current_bins AS c
    GROUP BY c.subject, c.column_name
),

shares AS (
    SELECT
        b.subject,
        b.column_name,
        t.total_rows AS actual_rows,
        b.total_rows AS expected_rows,
        greatest(coalesce(c.bin_rows, 0)::numeric / nullif(t.total_rows, 0), 0.0001) AS actual,
        greatest(b.psi_counts[i.bin + 1]::numeric / nullif(b.total_rows, 0), 0.0001) AS expected
    FROM baseline AS b
    CROSS JOIN LATERAL generate_series(0, cardinality(b.psi_edges)) AS i (bin)
    LEFT JOIN current_totals AS t ON b.subject = t.subject AND b.column_name = t.column_name
    LEFT JOIN current_bins AS c ON b.subject = c.subject AND b.column_name = c.column_name AND i.bin = c.bin
)

SELECT
    s.subject,
    s.column_name,
    max(s.actual_rows) AS profiled_rows,
    -- no values on either side: nothing to compare
    CASE
        WHEN max(s.actual_rows) > 0 AND max(s.expected_rows) > 0
            THEN round(sum((s.actual - s.expected) * ln(s.actual / s.expected)), 6)
    END AS psi
FROM shares AS s
GROUP BY s.subject, s.column_name;

{% if drift_checks -%}
INSERT INTO meta.validation_results (
    run_id, check_id, rule, column_name, severity, status,
    failing_count, row_count, failing_percent, message, level, action, measured, baseline
)
WITH checks AS (
    SELECT c.*
    FROM {{ results.check_rows(drift_checks, ['subject'], drift_subject) }}
),

current_batch AS (
    SELECT
        p.column_name,
        p.row_count,
        p.null_count
    FROM meta.profiles AS p
    WHERE p.run_id = current_setting('raw_to_ready.run_id') AND p.subject = 'batch' AND p.split = 'all'
),

baseline_batch AS (
    SELECT
        p.column_name,
        p.row_count,
        p.null_count
    FROM meta.profiles AS p
    INNER JOIN drift_baseline_run AS r ON p.run_id = r.run_id
    WHERE p.subject = 'batch' AND p.split = 'all'
),

measured AS (
    SELECT
        k.*,
        (SELECT r.run_id FROM drift_baseline_run AS r) AS baseline_run_id,
        cur.row_count AS current_rows,
        base.row_count AS baseline_rows,
        CASE k.rule
            WHEN 'row_count' THEN cur.row_count
            WHEN 'null_rate' THEN round(100.0 * cur.null_count / nullif(cur.row_count, 0), 4)
            WHEN 'psi' THEN d.psi
        END AS current_value,
        d.profiled_rows AS psi_rows,
        CASE k.rule
            WHEN 'row_count' THEN base.row_count
            WHEN 'null_rate' THEN round(100.0 * base.null_count / nullif(base.row_count, 0), 4)
        END AS baseline_value
    FROM checks AS k
    -- row_count reads the order_id row: every order has one
    LEFT JOIN current_batch AS cur ON cur.column_name = coalesce(k.column_name, 'order_id')
    LEFT JOIN baseline_batch AS base ON base.column_name = coalesce(k.column_name, 'order_id')
    LEFT JOIN drift_psi AS d ON k.subject = d.subject AND k.column_name = d.column_name
),

compared AS (
    SELECT
        m.*,
        CASE
            WHEN m.baseline_run_id IS NULL THEN 'no baseline: no earlier run passed with a profile'
            WHEN m.subject = 'batch' AND coalesce(m.current_rows, 0) = 0 THEN 'no new orders in this run'
            WHEN m.subject = 'batch' AND coalesce(m.baseline_rows, 0) = 0
                THEN format('no new orders in the baseline run %s', m.baseline_run_id)
            WHEN m.rule = 'psi' AND m.current_value IS NULL
                THEN format('no values to compare with the baseline run %s', m.baseline_run_id)
        END AS not_compared,
        -- what the thresholds compare: a change in % (row count), in points (null rate), the PSI
        CASE m.rule
            WHEN 'row_count' THEN round(100.0 * abs(m.current_value / nullif(m.baseline_value, 0) - 1), 4)
            WHEN 'null_rate' THEN abs(m.current_value - m.baseline_value)
            ELSE m.current_value
        END AS drift
    FROM measured AS m
),

judged AS (
    SELECT
        c.*,
        c.not_compared IS NULL AND c.severity = 'error' AND {{ exceeds('c.drift', 'c.error_op', 'c.error_value') }}
            AS is_error,
        c.not_compared IS NULL AND (
            {{ exceeds('c.drift', 'c.warn_op', 'c.warn_value') }}
            OR {{ exceeds('c.drift', 'c.error_op', 'c.error_value') }}
        ) AS is_warn
    FROM compared AS c
)

SELECT
    current_setting('raw_to_ready.run_id') AS run_id,
    j.check_id,
    j.rule,
    j.column_name,
    j.severity,
    CASE WHEN j.is_error THEN 'fail' WHEN j.is_warn THEN 'warn' ELSE 'pass' END AS status,
    CASE WHEN j.is_error OR j.is_warn THEN 1 ELSE 0 END AS failing_count,
    -- the rows measured: the batch's orders, or the feature values the PSI compared
    coalesce(CASE WHEN j.subject = 'batch' THEN j.current_rows ELSE j.psi_rows END, 0) AS row_count,
    0 AS failing_percent,
    CASE
        WHEN j.not_compared IS NOT NULL THEN j.message || ': ' || j.not_compared
        WHEN j.rule = 'row_count'
            THEN format(
                    '%s: %s orders in this batch, %s in the baseline run %s (%s%%)', j.message,
                    j.current_value, j.baseline_value, j.baseline_run_id,
                    to_char(100.0 * (j.current_value - j.baseline_value) / j.baseline_value, 'FMSG999990.0')
                )
        WHEN j.rule = 'null_rate'
            THEN format(
                    '%s: %s%% null in this batch, %s%% in the baseline run %s', j.message,
                    round(j.current_value, 2), round(j.baseline_value, 2), j.baseline_run_id
                )
        ELSE format('%s: PSI %s against the baseline run %s', j.message, round(j.current_value, 4), j.baseline_run_id)
    END AS message,
    'drift' AS level,
    j.action,
    j.current_value AS measured,
    j.baseline_value AS baseline
FROM judged AS j;
{%- endif %}
