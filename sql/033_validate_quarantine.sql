{%- import 'macros/rules.sql' as rules -%}
{%- import 'macros/versions.sql' as versions -%}
-- Sets aside the offending records of every check with action: quarantine that found
-- some in this run: each goes to meta.quarantine with its lineage and payload, and the
-- source models leave it out (sql/macros/sources.sql). Nothing is scanned when no
-- quarantine check found a record.
-- grain: one row per quarantined record per check per run (meta.quarantine)
-- requires: 030_validate_expectations.sql (this run's results), raw.raw_events,
--           V006__create_quarantine.sql, meta.runs (a range relative to now reads the run's start)
-- settings: raw_to_ready.run_id, raw_to_ready.work_files (the files this run validates: the
--           new ones, or every named file on a full refresh)
{%- set quarantine_checks = checks | selectattr('action', 'equalto', 'quarantine') | list %}
-- Dates are parsed as staging will parse them, never by the server's DateStyle, and naive
-- timestamps in the source's time zone (as 030 counted them).
SELECT meta.set_run_setting('datestyle', {{ ('ISO, ' ~ staging.date_order) | literal }});
SELECT meta.set_run_setting('timezone', {{ staging.source_timezone | literal }});
-- the run's start, for a range relative to now
{{ rules.remember_run_start() }}

INSERT INTO meta.quarantine (
    run_id, check_id, event_id, file_sha256, file_path, line_number, failing_value, payload
)
WITH quarantining_checks AS (
    SELECT r.check_id
    FROM meta.validation_results AS r
    WHERE
        r.run_id = current_setting('raw_to_ready.run_id')
        AND r.action = 'quarantine'
        AND r.failing_count > 0
),

batch_events AS (
    SELECT
        e.event_id,
        e.file_sha256,
        e.file_path,
        e.line_number,
        e.payload
    FROM raw.raw_events AS e
    WHERE
        e.file_sha256 = ANY({{ versions.work_files() }})
        AND EXISTS (SELECT 1 FROM quarantining_checks)
),

offending AS (
    {%- for check in quarantine_checks %}
    SELECT
        {{ check.id | literal }} AS check_id,
        e.event_id,
        e.file_sha256,
        e.file_path,
        e.line_number,
        {{ rules.field(check) }} AS failing_value,
        e.payload
    FROM batch_events AS e
    WHERE
        {{ check.id | literal }} IN (SELECT q.check_id FROM quarantining_checks AS q)
        AND {{ rules.offends(check) }}
    UNION ALL
    {%- endfor %}
    -- keeps the union well-formed whatever the number of quarantine checks
    SELECT
        NULL AS check_id,
        NULL::bigint AS event_id,
        NULL AS file_sha256,
        NULL AS file_path,
        NULL::bigint AS line_number,
        NULL AS failing_value,
        NULL::jsonb AS payload
    WHERE FALSE
)

SELECT
    current_setting('raw_to_ready.run_id') AS run_id,
    o.check_id,
    o.event_id,
    o.file_sha256,
    o.file_path,
    o.line_number,
    o.failing_value,
    o.payload
FROM offending AS o
-- append-only: a gate run again in the same run (an incremental run turned full refresh)
-- adds only what it did not set aside the first time
WHERE NOT EXISTS (
        SELECT 1
        FROM meta.quarantine AS q
        WHERE
            q.run_id = current_setting('raw_to_ready.run_id')
            AND q.check_id = o.check_id
            AND q.event_id = o.event_id
    )
ORDER BY o.check_id, o.event_id;
