{#-
  A feature row's place in the splits, from its time alone, written once for the
  assignments (60_splits/062) and the counts (60_splits/063, 064). `cuts` is a row of the
  temporary table split_boundaries (60_splits/060): val_starts_at, test_starts_at, gap.
  Import with context (labels: the purge and the censoring exist only with labels).
-#}

{#- A row's place, from its time t and the cut-offs (`cuts`: split_boundaries) alone: its
    split by time, or the gap before val and test, or, with labels, purged when its label
    window (t, t + H] reaches the start of a later split. -#}
{%- macro split_of(t) -%}
CASE
            WHEN {{ t }} >= cuts.test_starts_at THEN 'test'
            WHEN {{ t }} >= cuts.test_starts_at - cuts.gap THEN 'gap'
            WHEN {{ t }} >= cuts.val_starts_at AND {{ reaches(t, 'cuts.test_starts_at') }} THEN 'purged'
            WHEN {{ t }} >= cuts.val_starts_at THEN 'val'
            WHEN {{ t }} >= cuts.val_starts_at - cuts.gap THEN 'gap'
            WHEN {{ reaches(t, 'cuts.val_starts_at') }} THEN 'purged'
            ELSE 'train'
        END
{%- endmacro -%}

{#- The span a row at `t` lies in under the cut-offs `cuts` (a gap row counts in its span). -#}
{%- macro span_of(t, cuts) -%}
CASE WHEN {{ t }} >= {{ cuts }}.test_starts_at THEN 'test' WHEN {{ t }} >= {{ cuts }}.val_starts_at THEN 'val' ELSE 'train' END
{%- endmacro -%}

{#- The select list of a row `h` as the split counts count it: the span its feature_time
    lies in under the cut-offs `cuts`, its split, whether it is censored under the observed
    end `end_at`, and `sign` (1: as counted now, -1: as the published version counted it). -#}
{%- macro counted_row(cuts, end_at, sign) -%}
{{ span_of('h.feature_time', cuts) }} AS span,
        h.split,
        {{ censored('h.feature_time', end_at) }} AS is_censored,
        {{ sign }} AS sign
{%- endmacro -%}

{#- With labels: the label window of a row at `t` reaches `cut` (never without labels). -#}
{%- macro reaches(t, cut) -%}
{%- if labels -%}
{{ t }} + {{ horizon() }} >= {{ cut }}
{%- else -%}
FALSE
{%- endif -%}
{%- endmacro -%}

{#- The label horizon H as an interval (0 days without labels). -#}
{%- macro horizon() -%}
make_interval(days => {{ (labels.horizon_days if labels else 0) | literal }})
{%- endmacro -%}

{#- Censored in a version whose observed end is `end_at` (V013): the label window ends after it. -#}
{%- macro censored(t, end_at) -%}
{%- if labels -%}
coalesce({{ t }} + {{ horizon() }} > {{ end_at }}, FALSE)
{%- else -%}
FALSE
{%- endif -%}
{%- endmacro -%}

{#- The observed end of the version this run writes (55_labels/055 computed it), a scalar
    subquery; NULL without labels. -#}
{%- macro new_observed_end() -%}
{{ '(SELECT e.observed_end FROM work.label_observed_end AS e)' if labels else 'NULL::timestamptz' }}
{%- endmacro -%}
