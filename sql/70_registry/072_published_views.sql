{%- import 'macros/versions.sql' as versions -%}
-- Creates the views users query, next to the stage that publishes what they show (each
-- reads the latest published version: 70_registry/070 has just published this run's):
--   feats.customer_features, feats.customer_labels, meta.dataset_splits, feats.training_set
-- and, per retained version (WHERE feature_version = ...), the same names with _versions.
-- A view is (re)created only when its definition changed (ensure_view below). Without
-- labels in the config there are no label or training-set views.
-- grain: views: one row per feature row (customer_id, feature_time), and per retained
--        version in the _versions views; the training set one row per labelled row kept in
--        a split
-- requires: V010__versioned_publishing.sql (meta.feature_versions, meta.dataset_split_history),
--           V017__create_feature_and_label_history.sql, the value columns 50_features/050
--           and 55_labels/055 add
-- writes: feats.customer_features, feats.customer_features_versions, meta.dataset_splits,
--         meta.dataset_splits_versions, feats.customer_labels, feats.customer_labels_versions,
--         feats.training_set, feats.training_set_versions

{#- Run `statement` (a CREATE OR REPLACE VIEW of view `name`) only when it changed:
    CREATE OR REPLACE VIEW takes a lock that would queue readers behind any long query, so
    an unchanged view is left alone. The view's comment carries the statement's md5. When
    the columns change (a config change: another horizon renames the label columns), the
    view is dropped and created; our own views built on it (`dependents`) go first and are
    created again after it. A view of yours built on it makes the drop fail, naming it:
    drop it, run, create it again. -#}
{%- macro ensure_view(name, statement, comment, dependents=[]) %}
DO $ensure$
DECLARE
    definition constant text := {{ statement | trim | literal }};
    note constant text := {{ comment | literal }} || ' [definition md5 ' || md5(definition) || ']';
BEGIN
    IF to_regclass({{ name | literal }}) IS NULL
        OR obj_description(to_regclass({{ name | literal }}), 'pg_class') IS DISTINCT FROM note THEN
{%- for dependent in dependents %}
        EXECUTE format('DROP VIEW IF EXISTS %s', {{ dependent | literal }});
{%- endfor %}
        BEGIN
            EXECUTE definition;
        EXCEPTION WHEN invalid_table_definition THEN
            EXECUTE format('DROP VIEW %s', {{ name | literal }});
            EXECUTE definition;
        END;
        EXECUTE format('COMMENT ON VIEW %s IS %L', {{ name | literal }}, note);
    END IF;
END
$ensure$;
{%- endmacro %}

{#- A version `v` (a row of meta.feature_versions) the _versions views show: retained, and
    the latest of its feature_version (one published twice, back to earlier data, is its
    latest version). -#}
{%- macro retained(v) -%}
{{ v }}.dropped_at IS NULL
    AND {{ v }}.version_number = (
        SELECT max(w.version_number) FROM meta.feature_versions AS w WHERE w.feature_version = {{ v }}.feature_version
    )
{%- endmacro %}

{%- set feature_names = feature_columns | map('first') | list %}
{#- the label values (not the window's end), shown NULL while censored in the version -#}
{%- set label_values = [label_names.target, label_names.revenue] if labels else [] %}

{%- set customer_features %}
CREATE OR REPLACE VIEW feats.customer_features AS
SELECT
    h.customer_id,
    h.feature_time,
{%- for name in feature_names %}
    h.{{ name | ident }}{{ "," if not loop.last }}
{%- endfor %}
FROM feats.customer_feature_history AS h
WHERE {{ versions.in_version('h', versions.latest_published_version()) }}
{%- endset %}

{%- set customer_features_versions %}
CREATE OR REPLACE VIEW feats.customer_features_versions AS
SELECT
    v.feature_version,
    v.version_number,
    h.customer_id,
    h.feature_time,
{%- for name in feature_names %}
    h.{{ name | ident }}{{ "," if not loop.last }}
{%- endfor %}
FROM meta.feature_versions AS v
INNER JOIN feats.customer_feature_history AS h
    ON {{ versions.in_version('h', 'v.version_number') }}
WHERE {{ retained('v') }}
{%- endset %}

{%- set dataset_splits %}
CREATE OR REPLACE VIEW meta.dataset_splits AS
SELECT
    h.customer_id,
    h.feature_time,
    h.split,
    -- the run that assigned the row this split
    v.run_id
FROM meta.dataset_split_history AS h
INNER JOIN meta.feature_versions AS v ON h.valid_from = v.version_number
WHERE
    h.split IN ('train', 'val', 'test')
    AND {{ versions.in_version('h', versions.latest_published_version()) }}
{%- endset %}

{%- set dataset_splits_versions %}
CREATE OR REPLACE VIEW meta.dataset_splits_versions AS
SELECT
    v.feature_version,
    v.version_number,
    h.customer_id,
    h.feature_time,
    h.split
FROM meta.feature_versions AS v
INNER JOIN meta.dataset_split_history AS h
    ON {{ versions.in_version('h', 'v.version_number') }}
WHERE h.split IN ('train', 'val', 'test') AND {{ retained('v') }}
{%- endset %}

{#- A row is censored in a version when its label window ends after the version's observed
    end (V013): its labels are NULL there. `end_at` is that end (for the current view a
    scalar subquery, computed once, so the planner keeps its row estimates). -#}
{%- macro label_select(end_at) %}
    h.customer_id,
    h.feature_time,
    h.{{ label_names.window_end | ident }},
    h.{{ label_names.window_end | ident }} > {{ end_at }} AS is_censored,
{%- for name in label_values %}
    CASE WHEN h.{{ label_names.window_end | ident }} <= {{ end_at }} THEN h.{{ name | ident }} END AS {{ name | ident }}
{{- "," if not loop.last }}
{%- endfor %}
{%- endmacro %}

{%- if labels %}

{%- set customer_labels %}
CREATE OR REPLACE VIEW feats.customer_labels AS
SELECT
{{- label_select('(SELECT v.observed_end FROM meta.feature_versions AS v WHERE v.version_number = '
    ~ versions.latest_published_version() ~ ')') }}
FROM feats.customer_label_history AS h
WHERE {{ versions.in_version('h', versions.latest_published_version()) }}
{%- endset %}

{%- set customer_labels_versions %}
CREATE OR REPLACE VIEW feats.customer_labels_versions AS
SELECT
    v.feature_version,
    v.version_number,
{{- label_select('v.observed_end') }}
FROM meta.feature_versions AS v
INNER JOIN feats.customer_label_history AS h
    ON {{ versions.in_version('h', 'v.version_number') }}
WHERE {{ retained('v') }}
{%- endset %}

{%- set training_columns %}
    f.customer_id,
    f.feature_time,
{%- for name in feature_names %}
    f.{{ name | ident }},
{%- endfor %}
{%- for name in label_values %}
    l.{{ name | ident }},
{%- endfor %}
    s.split,
{%- endset %}

{%- set training_set %}
CREATE OR REPLACE VIEW feats.training_set AS
SELECT
{{- training_columns }}
    v.feature_version
FROM feats.customer_features AS f
INNER JOIN feats.customer_labels AS l
    ON f.customer_id = l.customer_id AND f.feature_time = l.feature_time
INNER JOIN meta.dataset_splits AS s
    ON f.customer_id = s.customer_id AND f.feature_time = s.feature_time
INNER JOIN meta.feature_versions AS v
    ON v.version_number = {{ versions.latest_published_version() }}
WHERE NOT l.is_censored
{%- endset %}

{%- set training_set_versions %}
CREATE OR REPLACE VIEW feats.training_set_versions AS
SELECT
{{- training_columns }}
    f.feature_version,
    f.version_number
FROM feats.customer_features_versions AS f
INNER JOIN feats.customer_labels_versions AS l
    ON f.version_number = l.version_number AND f.customer_id = l.customer_id AND f.feature_time = l.feature_time
INNER JOIN meta.dataset_splits_versions AS s
    ON f.version_number = s.version_number AND f.customer_id = s.customer_id AND f.feature_time = s.feature_time
WHERE NOT l.is_censored
{%- endset %}
{%- endif %}

-- The views, created or replaced only when their definition changed.
{{ ensure_view('feats.customer_features', customer_features,
    'Point-in-time customer features of the latest published version: one row per customer and order instant. '
    ~ 'See sql/50_features/050_customer_feature_history.sql for the definitions.',
    dependents=['feats.training_set_versions', 'feats.training_set']) }}

{{ ensure_view('feats.customer_features_versions', customer_features_versions,
    'feats.customer_features in every retained version: filter on feature_version.',
    dependents=['feats.training_set_versions', 'feats.training_set']) }}

{{ ensure_view('meta.dataset_splits', dataset_splits,
    'The split of every feature row kept (train, val, test) in the latest published version. '
    ~ 'See sql/60_splits/.',
    dependents=['feats.training_set_versions', 'feats.training_set']) }}

{{ ensure_view('meta.dataset_splits_versions', dataset_splits_versions,
    'meta.dataset_splits in every retained version: filter on feature_version.',
    dependents=['feats.training_set_versions', 'feats.training_set']) }}
{%- if labels %}

{{ ensure_view('feats.customer_labels', customer_labels,
    'Forward-looking labels per feature row of the latest published version; NULL when censored. '
    ~ 'See sql/55_labels/055_customer_label_history.sql for the definitions.',
    dependents=['feats.training_set_versions', 'feats.training_set']) }}

{{ ensure_view('feats.customer_labels_versions', customer_labels_versions,
    'feats.customer_labels in every retained version: filter on feature_version.',
    dependents=['feats.training_set_versions', 'feats.training_set']) }}

{{ ensure_view('feats.training_set', training_set,
    'One row per labelled feature row kept in a split: features, labels, split, feature_version '
    ~ '(the latest published version).',
    dependents=['feats.training_set_versions']) }}

{{ ensure_view('feats.training_set_versions', training_set_versions,
    'feats.training_set in every retained version: filter on feature_version.') }}
{%- else %}

-- No labels in this config: no label or training-set views.
DROP VIEW IF EXISTS feats.training_set_versions;
DROP VIEW IF EXISTS feats.training_set;
DROP VIEW IF EXISTS feats.customer_labels_versions;
DROP VIEW IF EXISTS feats.customer_labels;
{%- endif %}
