"""What a stage is, written once: the table of stages, in run order.

A stage's name is its ``--stage`` value, its make target and its folder under sql/
(``sql/NN_<name>/``, whose files it runs in name order: scripts/db/render.py). Each stage
runs in one transaction. A stage's row count is what its ``-- rows:`` statements wrote to
its table (``table`` below; scripts/db/execute.py); what it read, when that says more, is
counted by its ``-- read:`` statements or by its checks or report (``read`` below).
A stage that reads nothing the stage before it writes may run beside it, on a second
connection, when the run is a full refresh on one server (``beside`` below): both cores
work, each stage still in its own transaction.

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
    data: bool = True  # works on the batch's rows: the log shows it start
    table: str = ""  # the table its row count is of: the rows it wrote there
    read: str | None = None  # what its checks count as read (else its report or -- read: statements)
    beside: str | None = None  # the stage before it, which a full refresh runs it beside


STAGES: tuple[Stage, ...] = (
    # migrations, then 00_migrate (Citus tables)
    Stage("migrate", kind="migrate", data=False, table="meta.schema_migrations"),
    # COPY per file (scripts/ingest/copy.py)
    Stage("ingest", kind="ingest", table="raw.raw_events"),
    # record-level rules, quarantine
    Stage("validate", gate_level="records", table="meta.quarantine", read="records checked"),
    # the source models, then order-level rules
    Stage("model", gate_level="orders", table="stg.model_orders", read="orders checked"),
    Stage("stage", table="stg.orders"),
    Stage("features", table="feats.customer_feature_history"),
    # its scope comes from stg.order_changes, not from the features'
    Stage("labels", table="feats.customer_label_history", beside="features"),
    Stage("splits", report="splits", table="meta.dataset_split_history"),
    # profiles, drift checks
    Stage("profile", gate_level="drift", report="profile", table="meta.profiles"),
    # records the version and publishes it
    Stage("registry", kind="registry", data=False, table="meta.feature_versions"),
)
STAGE_NAMES: list[str] = [stage.name for stage in STAGES]
BY_NAME: dict[str, Stage] = {stage.name: stage for stage in STAGES}
GATE_LEVELS: dict[str, str] = {stage.name: stage.gate_level for stage in STAGES if stage.gate_level}
