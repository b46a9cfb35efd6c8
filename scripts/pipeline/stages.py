"""What a stage is, written once: the table of stages, in run order.

A stage's name is its ``--stage`` value, its make target and its folder under sql/
(``sql/NN_<name>/``, whose files it runs in name order: scripts/db/render.py). Each stage
runs in one transaction. A stage's row count is what its ``-- rows:`` statements wrote
(scripts/db/execute.py), unless its checks or its report count rows (below).

Adding a stage: a folder sql/NN_<name>/ with its files, a row here, a make target.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    name: str
    kind: str = "sql"  # how the runner runs it: migrate | ingest | sql | registry (pipeline/runner.py)
    gate_level: str | None = None  # its checks (records | orders | drift) can stop the run
    report: str | None = None  # what it adds to the report: splits | profile (pipeline/stage_reports.py)
    data: bool = True  # works on the batch's rows: the log shows it start, and its rows per second


STAGES: tuple[Stage, ...] = (
    Stage("migrate", kind="migrate", data=False),  # migrations, then 00_migrate (Citus tables)
    Stage("ingest", kind="ingest"),  # COPY per file into raw.raw_events (scripts/ingest/copy.py)
    Stage("validate", gate_level="records"),  # record-level rules, quarantine
    Stage("model", gate_level="orders"),  # the source models, then order-level rules
    Stage("stage"),  # stg.orders
    Stage("features"),
    Stage("labels"),
    Stage("splits", report="splits"),
    Stage("profile", gate_level="drift", report="profile"),  # profiles, drift checks
    Stage("registry", kind="registry", data=False),  # records the version and publishes it
)
STAGE_NAMES: list[str] = [stage.name for stage in STAGES]
BY_NAME: dict[str, Stage] = {stage.name: stage for stage in STAGES}
GATE_LEVELS: dict[str, str] = {stage.name: stage.gate_level for stage in STAGES if stage.gate_level}
