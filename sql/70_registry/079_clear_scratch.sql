-- The run's scratch is spent once its version is published (70_registry/070). Emptied here,
-- so that the next run does not pay for it: dropping a full refresh's scratch unlinks its
-- files when the dropping transaction commits (about 0.2 s per table of 10M rows). A run
-- that stops earlier (make model, make features) leaves it to look at.
-- grain: none (empties the scratch tables)
-- requires: the scratch tables of 37_model/037 and 039, 50_features/050, 55_labels/055,
--           60_splits/062 and 65_profile/065
-- writes: stg.model_orders, stg.model_lines, work.feature_scope, work.feature_rows,
--         work.entity_feature_rows, work.split_scope, work.split_rows, work.profile_values,
--         work.label_scope, work.label_rows
TRUNCATE stg.model_orders, stg.model_lines, work.feature_scope, work.feature_rows, work.entity_feature_rows,
work.split_scope, work.split_rows, work.profile_values
{%- if labels %}, work.label_scope, work.label_rows{% endif %}
;
