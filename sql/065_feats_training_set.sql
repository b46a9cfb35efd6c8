-- Builds the training set: every labelled feature row kept in a split, with its features,
-- its labels, its split and the feature_version of the run that made it.
-- grain: one row per (customer_id, feature_time) with a label (censored, purged and gap
--        rows are in no training set)
-- requires: 055_feats_customer_labels.sql, 060_meta_dataset_splits.sql
-- settings: raw_to_ready.feature_version (the runner derives it from content before the
--           first stage; a DBA sets it with SET)
DROP TABLE IF EXISTS feats.training_set;
{%- if labels %}

-- Unlogged: derived data, rebuilt by every run (make export keeps a version on disk).
CREATE UNLOGGED TABLE feats.training_set AS
SELECT
    f.customer_id,
    f.feature_time,
    {%- for days in features.windows_days %}
    f.{{ ('orders_' ~ days ~ 'd') | ident }},
    f.{{ ('revenue_' ~ days ~ 'd') | ident }},
    {%- endfor %}
    f.days_since_last_order,
    l.{{ ('repeat_' ~ labels.horizon_days ~ 'd') | ident }},
    l.{{ ('revenue_next_' ~ labels.horizon_days ~ 'd') | ident }},
    s.split,
    current_setting('raw_to_ready.feature_version') AS feature_version
FROM feats.customer_features AS f
INNER JOIN feats.customer_labels AS l
    ON f.customer_id = l.customer_id AND f.feature_time = l.feature_time
INNER JOIN meta.dataset_splits AS s
    ON f.customer_id = s.customer_id AND f.feature_time = s.feature_time
WHERE NOT l.is_censored;

ALTER TABLE feats.training_set
ADD CONSTRAINT training_set_pkey PRIMARY KEY (customer_id, feature_time);

COMMENT ON TABLE feats.training_set IS
'One row per labelled feature row kept in a split: features, labels, split, feature_version. '
'See sql/065_feats_training_set.sql.';
{%- endif %}
