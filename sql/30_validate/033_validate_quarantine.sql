{%- import 'macros/rules.sql' as rules -%}
{%- import 'macros/results.sql' as results with context -%}
{%- import 'macros/versions.sql' as versions -%}
-- Sets aside the offending records of every check with action: quarantine that found
-- some in this run: each goes to meta.quarantine with its lineage and payload, and the
-- source models leave it out (sql/macros/sources.sql). Nothing is scanned when no
-- quarantine check found a record.
-- grain: one row per quarantined record per check per run (meta.quarantine)
-- requires: 30_validate/030_validate_expectations.sql (this run's results), raw.raw_events,
--           V006__create_quarantine.sql, meta.runs (a range relative to now reads the run's start)
-- writes: meta.quarantine
-- settings: raw_to_ready.run_id, raw_to_ready.work_files (the files this run validates: the
--           new ones, or every named file on a full refresh)
{%- set quarantine_checks = checks | selectattr('action', 'equalto', 'quarantine') | list %}
-- Dates are parsed as staging will parse them, never by the server's DateStyle, and naive
-- timestamps in the source's time zone (as 030 counted them).
SELECT meta.set_run_setting('datestyle', {{ ('ISO, ' ~ staging.date_order) | literal }});
SELECT meta.set_run_setting('timezone', {{ staging.source_timezone | literal }});
-- the run's start, for a range relative to now
{{ rules.remember_run_start() }}

-- rows: records quarantined
INSERT INTO meta.quarantine (
    run_id, check_id, event_id, file_sha256, file_path, line_number, failing_value, payload
)
WITH quarantining_checks AS (
    -- a quarantine check that found records never passes
    {{ results.flagged('records', action='quarantine') }}
),

batch_events AS (
    {{ results.batch_events('quarantining_checks') }}
),

offending AS (
    {{- results.offending(quarantine_checks, 'quarantining_checks') }}
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
