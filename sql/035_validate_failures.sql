{%- import 'macros/rules.sql' as rules -%}
{%- import 'macros/versions.sql' as versions -%}
-- Appends the offending records of every check that did not pass in this run to the
-- failure history, capped per check (the exact count is in meta.validation_results).
-- Nothing is scanned when every check passed.
-- grain: one row per offending record per check per run (meta.validation_failures)
-- requires: 030_validate_expectations.sql (this run's results), raw.raw_events, meta.runs (a
--           range relative to now reads the run's start)
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
    SELECT r.check_id
    FROM meta.validation_results AS r
    WHERE
        r.run_id = current_setting('raw_to_ready.run_id')
        AND r.level = 'records'
        AND r.status != 'pass'
        -- a quarantine check's records are all in meta.quarantine already
        AND r.action = 'fail'
),

batch_events AS (
    SELECT
        e.event_id,
        e.file_path,
        e.line_number,
        e.payload
    FROM raw.raw_events AS e
    WHERE
        e.file_sha256 = ANY({{ versions.work_files() }})
        AND EXISTS (SELECT 1 FROM flagged_checks)
),

offending AS (
    {%- for check in row_checks + unique_checks %}
    SELECT
        {{ check.id | literal }} AS check_id,
        e.event_id,
        e.file_path,
        e.line_number,
        {{ rules.field(check) }} AS failing_value,
        e.payload
    FROM batch_events AS e
    WHERE
        {{ check.id | literal }} IN (SELECT f.check_id FROM flagged_checks AS f)
        AND {{ rules.offends(check) }}
    UNION ALL
    {%- endfor %}
    -- every copy of a record after its first is an exact repeat
    SELECT
        'exact_duplicates' AS check_id,
        repeats.event_id,
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
    SELECT
        o.*,
        row_number() OVER (PARTITION BY o.check_id ORDER BY o.event_id) AS failure_rank
    FROM offending AS o
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
