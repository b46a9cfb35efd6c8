"""The pipeline run: the stages in order, each in one transaction.

    stages.py         what a stage is: the table of stages (name, kind, gate level, report)
    runner.py         run_pipeline: every stage through the one asked for, the report at the end
    state.py          a run's state as the stages fill it in
    context.py        what the SQL templates see; every stage's rendered files; make render
    stage_reports.py  what a stage adds to the report besides its checks (splits, profile)
    models.py         the source models: rendered, and checked against the contract
    versions.py       the feature_version and the incremental plan (which files, which version)
"""
