{#-
  What a source model reads: the raw events of the source's files in this run's batch,
  less the records a check quarantined in this run. Rendered by the runner into each
  model's `source_events` (use it as `FROM {{ source_events }} AS e`).
-#}
{%- import 'macros/versions.sql' as versions with context -%}
{%- import 'macros/rules.sql' as rules -%}
{%- macro source_events(file_sha256s) -%}
(
    SELECT
        e.event_id,
        e.file_sha256,
        e.source_name,
        e.file_path,
        e.line_number,
        e.record_number,
        e.payload,
        -- the file's place among the source's files in the config (1, 2, ...): what a model
        -- orders records by, rather than the order files happened to be ingested
        f.file_position
    -- the source's files that this run models (the new ones, or all of them on a full
    -- refresh), read through the index for a daily file; each event's file's place
    FROM raw.raw_events AS e
    INNER JOIN unnest({{ file_sha256s | literal }}::text[]) WITH ORDINALITY AS f (file_sha256, file_position)
        ON e.file_sha256 = f.file_sha256
    WHERE
        {{ versions.in_work_files('e.file_sha256') }}
        -- the run's quarantined events, found once (a hashed list): not a lookup per event,
        -- which Citus cannot run where raw events are distributed and the quarantine is not
        -- (event_id is never NULL, so NOT IN means what it says)
        AND e.event_id NOT IN (
            SELECT q.event_id
            FROM meta.quarantine AS q
            WHERE q.run_id = current_setting('raw_to_ready.run_id')
        )
)
{%- endmacro -%}

{#- staging.attributes for a list: ", a.country, a.channel" of the row `alias` (none: the bare
    names); with `cast`, each cast to its type and named (", a.country::text AS country"); with
    `assign`, set from the row (", country = a.country"). One macro for every such list, so
    that each has them in the config's order. -#}
{%- macro attribute_list(staging, alias=none, cast=false, assign=false) -%}
{%- for name in staging.attributes -%}
, {% if assign %}{{ name | ident }} = {% endif %}{% if alias %}{{ alias }}.{% endif %}{{ name | ident }}
{%- if cast %}::{{ staging.attributes[name] }} AS {{ name | ident }}{% endif %}
{%- endfor -%}
{%- endmacro -%}


{#- The default model's reads of staging.attributes from the record `payload`: each from its
    source column (columns:, by default its own name), trimmed, empty as NULL, cast to its
    type; as select-list items ending in a comma. -#}
{%- macro attribute_reads(staging, columns, payload) -%}
{%- for name in staging.attributes %}
        nullif({{ rules.trimmed(payload ~ ' ->> ' ~ (columns[name] | literal)) }}, '')::{{ staging.attributes[name] }}
        AS {{ name | ident }},
{%- endfor -%}
{%- endmacro -%}
