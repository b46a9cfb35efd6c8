{%- import 'macros/rules.sql' as rules -%}
{%- import 'macros/results.sql' as results with context -%}
{%- import 'macros/versions.sql' as versions -%}
-- Appends the offending records of every check that did not pass in this run to the
-- failure history, capped per check (the exact count is in meta.validation_results).
-- Nothing is scanned when every check passed.
-- grain: one row per offending record per check per run (meta.validation_failures)
-- requires: 30_validate/030_validate_expectations.sql (this run's results), raw.raw_events,
--           meta.runs (a range relative to now reads the run's start)
-- writes: meta.validation_failures
-- settings: raw_to_ready.run_id, raw_to_ready.work_files (the files this run validates: the
--           new ones, or every named file on a full refresh)
{%- set row_checks = checks | rejectattr('rule', 'in', ['unique', 'exact_duplicates', 'min_rows', 'max_rows']) | list %}
{%- set unique_checks = checks | selectattr('rule', 'equalto', 'unique') | list %}
-- Dates are parsed as staging will parse them, never by the server's DateStyle, and naive
-- timestamps in the source's time zone (as 030 counted them).
SELECT meta.set_run_setting('datestyle', {{ ('ISO, ' ~ staging.date_order) | literal }});
SELECT meta.set_run_setting('timezone', {{ staging.source_timezone | literal }});
-- the run's start, for a range relative to now
{{ rules.remember_run_start() }}

INSERT INTO meta.validation_failures (
    run_id, check_id, event_id, file_path, line_number, failing_value, payload
)
WITH flagged_checks AS (
    -- a quarantine check's records are all in meta.quarantine already
    {{ results.flagged('records', action='fail') }}
),

batch_events AS (
    {{ results.batch_events('flagged_checks') }}
),

offending AS (
    {{- results.offending(row_checks + unique_checks, 'flagged_checks') }}
    UNION ALL
    -- every copy of a record after its first is an exact repeat
    SELECT
        'exact_duplicates' AS check_id,
        repeats.event_id,
        repeats.file_sha256,
        repeats.file_path,
        repeats.line_number,
        NULL AS failing_value,
        repeats.payload
    FROM (
        SELECT
            e.*,
            row_number() OVER (PARTITION BY e.payload ORDER BY e.event_id) AS copy_number
        FROM batch_events AS e
        WHERE 'exact_duplicates' IN (SELECT f.check_id FROM flagged_checks AS f)
    ) AS repeats
    WHERE repeats.copy_number > 1
),

ranked AS (
    {{ results.ranked('offending') }}
)

SELECT
    current_setting('raw_to_ready.run_id') AS run_id,
    check_id,
    event_id,
    file_path,
    line_number,
    failing_value,
    payload
FROM ranked
WHERE failure_rank <= {{ failure_history_cap | literal }}
ORDER BY check_id, event_id;
