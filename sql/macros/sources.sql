{#-
  What a source model reads: the raw events of the source's files in this run's batch,
  less the records a check quarantined in this run. Rendered by the runner into each
  model's `source_events` (use it as `FROM {{ source_events }} AS e`).
-#}
{%- import 'macros/versions.sql' as versions -%}
{%- macro source_events(file_sha256s) -%}
(
    SELECT
        e.event_id,
        e.file_sha256,
        e.source_name,
        e.file_path,
        e.line_number,
        e.record_number,
        e.payload
    FROM raw.raw_events AS e
    WHERE
        -- the files this run models (the new ones, or all of them on a full refresh) read
        -- through the index; then the source's own among them (array_position, so that the
        -- planner does not read every file of the source through the index instead)
        e.file_sha256 = ANY({{ versions.work_files() }})
        AND array_position({{ file_sha256s | literal }}::text[], e.file_sha256::text) IS NOT NULL
        AND NOT EXISTS (
            SELECT 1
            FROM meta.quarantine AS q
            WHERE
                q.run_id = current_setting('raw_to_ready.run_id')
                AND q.event_id = e.event_id
        )
)
{%- endmacro -%}
