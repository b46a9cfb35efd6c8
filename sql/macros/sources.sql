{#-
  What a source model reads: the raw events of the source's files in this run's batch,
  less the records a check quarantined in this run. Rendered by the runner into each
  model's `source_events` (use it as `FROM {{ source_events }} AS e`).
-#}
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
        e.file_sha256 = ANY({{ file_sha256s | literal }}::text[])
        AND NOT EXISTS (
            SELECT 1
            FROM meta.quarantine AS q
            WHERE
                q.run_id = current_setting('raw_to_ready.run_id')
                AND q.event_id = e.event_id
        )
)
{%- endmacro -%}
