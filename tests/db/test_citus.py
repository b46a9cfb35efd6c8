"""The pipeline on a local Citus cluster (scripts/db/citus.py: a coordinator and two
workers on localhost, Citus 14 built from ../shared/vendor/citus/ on first use).

Selected with -m citus (left out with -m 'not citus'). The cluster is started for the suite
when it is not running, and stopped again afterwards; every test gets databases of its own
on every node.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import psycopg
from psycopg import sql
import pytest

from scripts.bench import generate_orders
from scripts.db import citus as citus_cluster
from scripts.db import migrate
from scripts.serve.retrieve import retrieve
from scripts.run import EXIT_PASSED, EXIT_RUNTIME, run_pipeline
from tests.runner.crash_helpers import (PUBLISHED, REGISTRY, Runner, compared_columns, differences, published_state, snapshot_connection,
                                 stage_line, table_content)

pytestmark = pytest.mark.citus

# features.define on the cluster: every aggregate, a filter, lifetime and hour windows, a ratio
DEFINE = [
    {"name": "basket", "agg": "avg", "column": "amount", "windows": ["30d", "lifetime"]},
    {"name": "spend", "agg": "sum", "column": "amount", "windows": ["12h"]},
    {"name": "small", "agg": "count", "where": {"column": "amount", "op": "<", "value": 20}, "windows": ["7d"]},
    {"name": "low", "agg": "min", "column": "amount", "windows": ["7d"]},
    {"name": "high", "agg": "max", "column": "amount", "windows": ["lifetime"]},
    {"name": "first_amount", "agg": "first", "column": "amount", "windows": ["30d"]},
    {"name": "last_amount", "agg": "last", "column": "amount", "windows": ["lifetime"]},
    {"name": "amounts", "agg": "count_distinct", "column": "amount", "windows": ["7d", "lifetime"]},
    {"name": "since_first", "agg": "time_since_first"},
    {"name": "since_last", "agg": "time_since_last", "windows": ["30d"]},
    {"name": "small_share", "ratio": ["small_7d", "orders_7d"]},
]
FEATURES = {"windows_days": [7, 30], "define": DEFINE}


@pytest.fixture(scope="session")
def citus_cluster_up() -> Iterator[None]:
    was_running = all(running for _, _, running in citus_cluster.status())
    citus_cluster.up()
    yield
    if not was_running:
        citus_cluster.down()


@pytest.fixture
def citus_db(citus_cluster_up: None) -> Iterator[Callable[[], str]]:
    """Creates databases on every node of the cluster (with the extension, the workers
    registered); drops them afterwards."""
    names: list[str] = []

    def create() -> str:
        names.append(f"r2r_citus_{uuid.uuid4().hex[:10]}")
        return citus_cluster.create_database(names[-1])

    yield create
    for name in names:
        citus_cluster.drop_database(name)


def test_the_cluster_spreads_a_distributed_table_over_both_workers(citus_db):
    url = citus_db()
    with psycopg.connect(url, autocommit=True) as conn:
        workers = conn.execute("SELECT nodeport FROM pg_dist_node WHERE noderole = 'primary' AND isactive"
                               " AND shouldhaveshards ORDER BY nodeport").fetchall()
        assert [w[0] for w in workers] == [citus_cluster.port_of("worker1"), citus_cluster.port_of("worker2")]
        conn.execute("CREATE TABLE t (customer_id text, n int)")
        conn.execute("SELECT create_distributed_table('t', 'customer_id', shard_count => 4)")
        conn.execute("INSERT INTO t SELECT 'c' || i, i FROM generate_series(1, 1000) AS i")
        shards_by_node = dict(conn.execute(
            "SELECT nodeport, count(*) FROM citus_shards WHERE table_name = 't'::regclass GROUP BY nodeport").fetchall())
        assert shards_by_node == {citus_cluster.port_of("worker1"): 2, citus_cluster.port_of("worker2"): 2}
        assert conn.execute("SELECT count(*), sum(n) FROM t").fetchone() == (1000, 500500)
    # each worker holds a part of the rows, read on the worker itself
    held = 0
    for worker in ("worker1", "worker2"):
        with psycopg.connect(citus_cluster.url_of(worker, url.rsplit("/", 1)[1])) as conn:
            conn.execute("SET citus.override_table_visibility = off")  # Citus hides shards otherwise
            shards = conn.execute("SELECT c.relname FROM pg_class c WHERE c.relname ~ '^t_[0-9]+$'").fetchall()
            counts = [conn.execute(psycopg.sql.SQL("SELECT count(*) FROM {}").format(psycopg.sql.Identifier(s[0])))
                      .fetchone()[0] for s in shards]
            assert len(shards) == 2 and 0 < sum(counts) < 1000
            held += sum(counts)
    assert held == 1000


def test_the_pipeline_on_the_coordinator_equals_a_single_node_run(project, db_url, citus_db):
    """Without the distribution switch the pipeline runs unchanged on a Citus coordinator
    (every table local to it) and publishes exactly what a plain PostgreSQL publishes."""
    generate_orders.generate(project.root / "data" / "raw" / "orders.csv", rows=6000, seed=11, days=400)
    config = project.write_config(labels={"horizon_days": 30})
    code, report = run_pipeline(config, db_url)
    assert code == EXIT_PASSED, report.get("errors")
    citus_url = citus_db()
    code, report = run_pipeline(config, citus_url)
    assert code == EXIT_PASSED, report.get("errors")

    single, cluster = published_state(db_url), published_state(citus_url)
    assert differences(cluster, single) == []
    assert all(single[name] for name in PUBLISHED), "every published table has rows"
    assert single[REGISTRY] == cluster[REGISTRY]


def test_a_runs_settings_reach_the_workers(citus_db):
    """A query that a worker runs reads the run's settings (raw_to_ready.*, the time zone):
    meta.set_run_setting's SET LOCAL is forwarded to the workers; set_config is not."""
    url = citus_db()
    with psycopg.connect(url, autocommit=True) as conn:
        migrate.apply_pending(conn, log=lambda message: None)
        conn.execute("CREATE TABLE public.t (customer_id text, at_text text)")
        conn.execute("SELECT create_distributed_table('public.t', 'customer_id', shard_count => 4)")
        conn.execute("INSERT INTO public.t SELECT 'c' || i, '2024-07-01 12:00' FROM generate_series(1, 100) AS i")
    counted = "SELECT count(*) FROM public.t WHERE customer_id <> current_setting('raw_to_ready.run_id')"
    with psycopg.connect(url) as conn:
        conn.execute("SELECT set_config('raw_to_ready.run_id', 'c1', true)")
        with pytest.raises(psycopg.errors.UndefinedObject, match='unrecognized configuration parameter "raw_to_ready.run_id"'):
            conn.execute(counted)
    with psycopg.connect(url) as conn:
        conn.execute("SELECT count(*) FROM public.t")  # the connections to the workers are open already
        conn.execute("SELECT meta.set_run_setting('raw_to_ready.run_id', 'c1')")
        conn.execute("SELECT meta.set_run_setting('timezone', 'America/New_York')")
        assert conn.execute(counted).fetchone() == (99,)
        # the text is read as a time in New York on the workers: 16:00 UTC
        assert conn.execute("SELECT count(*) FROM public.t WHERE at_text::timestamptz = '2024-07-01 16:00Z'")\
            .fetchone() == (100,)


DISTRIBUTED = {"raw.raw_events": "event_id", "stg.orders": "customer_key", "stg.model_orders": "customer_key",
               "feats.customer_feature_history": "customer_id", "feats.customer_label_history": "customer_id",
               "work.feature_rows": "customer_id", "work.label_rows": "customer_id"}


def edge_case_orders(project) -> None:
    """Generated orders (same-instant ties, skewed customers, cancelled and refunded ones)
    plus orders without a customer, a customer with one order, and an order whose id
    sorts between customers'."""
    path = project.root / "data" / "raw" / "orders.csv"
    generate_orders.generate(path, rows=4000, seed=5, days=400)
    with path.open("a", encoding="utf-8") as handle:
        handle.write("X1,,2024-03-01T10:00:00Z,5.00,completed\n"
                     "X2,,2024-03-01T10:00:00Z,7.50,completed\n"
                     "X3,C_SOLO,2024-06-01T00:00:00Z,12.00,completed\n"
                     "C00001,C_SOLO,2024-06-01T00:00:00Z,3.00,cancelled\n")


def test_a_distributed_run_equals_a_single_node_run(project, db_url, citus_db):
    """With distribution: citus the staged orders, features, labels and splits are sharded
    by customer over both workers, and the run publishes exactly what one server publishes
    from the same file: staged orders, features, labels, splits, training set; the registry
    row too, but for the hashes of the config and of the rendered SQL (the switch, and the
    distribution DDL it renders), hence the feature_version."""
    edge_case_orders(project)
    single = project.write_config(labels={"horizon_days": 30}, features=FEATURES, name="single.yaml")
    cluster = project.write_config(labels={"horizon_days": 30}, features=FEATURES, name="citus.yaml",
                                   distribution={"kind": "citus", "shard_count": 4})
    code, report = run_pipeline(single, db_url)
    assert code == EXIT_PASSED, report.get("errors")
    citus_url = citus_db()
    code, report = run_pipeline(cluster, citus_url)
    assert code == EXIT_PASSED, report.get("errors")

    with psycopg.connect(citus_url) as conn:
        placed = dict(conn.execute("SELECT logicalrelid::regclass::text, column_to_column_name(logicalrelid, partkey)"
                                   " FROM pg_dist_partition WHERE partmethod = 'h'").fetchall())
        assert {table: placed.get(table) for table in DISTRIBUTED} == DISTRIBUTED
        on_workers = dict(conn.execute("SELECT nodeport, sum(shard_size) FROM citus_shards"
                                       " WHERE table_name = 'feats.customer_feature_history'::regclass"
                                       " GROUP BY nodeport").fetchall())
        assert set(on_workers) == {citus_cluster.port_of("worker1"), citus_cluster.port_of("worker2")}
        assert conn.execute("SELECT count(*) FROM stg.orders WHERE customer_id IS NULL"
                            " AND customer_key = order_id").fetchone() == (2,)

    one, many = published_state(db_url), published_state(citus_url)
    assert all(one[name] for name in PUBLISHED), "every published table has rows"
    same_content = [name for name in PUBLISHED if name != "feats.training_set"]
    assert differences({name: many[name] for name in same_content}, {name: one[name] for name in same_content}) == []
    # the config (its distribution switch) and the SQL it renders (the distribution DDL) differ
    rendered = {"feature_version", "sql_sha256", "config_sha256"}
    with snapshot_connection(db_url) as one_conn, snapshot_connection(citus_url) as many_conn:
        columns = tuple(c for c in compared_columns(one_conn, "feats.training_set") if c not in rendered)
        assert table_content(many_conn, "feats.training_set", columns) \
            == table_content(one_conn, "feats.training_set", columns)
    assert {k: v for k, v in many[REGISTRY].items() if k not in rendered} \
        == {k: v for k, v in one[REGISTRY].items() if k not in rendered}
    assert many[REGISTRY]["feature_version"] != one[REGISTRY]["feature_version"]
    with snapshot_connection(db_url) as one_conn, snapshot_connection(citus_url) as many_conn:
        for table in ("feats.customer_feature_history", "feats.customer_label_history",
                      "meta.dataset_split_history"):
            assert table_content(many_conn, table) == table_content(one_conn, table), table


def explain(url: str, run_id: str, file_name: str, statement_start: str) -> str:
    """The plan of the statement of the run's rendered file (artifacts/runs/<run_id>/sql/,
    under the current directory) that starts with ``statement_start``, under a full
    refresh's settings."""
    text = (Path("artifacts") / "runs" / run_id / "sql" / file_name).read_text(encoding="utf-8")
    start = text.index(statement_start)
    statement = text[start:text.index(";\n", start)]
    with psycopg.connect(url) as conn:
        for name, value in (("raw_to_ready.full_refresh", "on"), ("raw_to_ready.published_version", "0"),
                            ("raw_to_ready.version_number", "1"), ("raw_to_ready.run_id", run_id),
                            ("enable_hashagg", "off")):
            conn.execute("SELECT meta.set_run_setting(%s, %s)", (name, value))
        return "\n".join(row[0] for row in conn.execute(("EXPLAIN " + statement).encode()).fetchall())


@pytest.mark.parametrize(("file_name", "statement_start", "shard"), [
    ("050_customer_feature_history.sql", "INSERT INTO work.feature_rows", "feature_rows_"),
    ("055_customer_label_history.sql", "INSERT INTO work.label_rows", "label_rows_"),
])
def test_the_feature_and_label_windows_run_on_the_workers(project, citus_db, file_name, statement_start, shard):
    """EXPLAIN of the statement that computes the windows: one task per shard, each on a
    worker, each inserting into its own shard after its own WindowAgg: nothing is pulled to
    the coordinator."""
    edge_case_orders(project)
    config = project.write_config(labels={"horizon_days": 30}, distribution={"kind": "citus", "shard_count": 4})
    citus_url = citus_db()
    code, report = run_pipeline(config, citus_url)
    assert code == EXIT_PASSED, report.get("errors")

    plan = explain(citus_url, report["run_id"], file_name, statement_start)
    lines = plan.splitlines()
    assert lines[0].startswith("Custom Scan (Citus Adaptive)"), plan
    assert "Task Count: 4" in plan, plan
    task = plan[plan.index("->  Task"):]
    assert re.search(rf"Node: host=127\.0\.0\.1 port=({citus_cluster.port_of('worker1')}|"
                     rf"{citus_cluster.port_of('worker2')})", task), plan
    assert re.search(rf"Insert on {shard}\d+", task), plan
    assert "WindowAgg" in task and "PARTITION BY" in task, plan
    # no step gathers rows on the coordinator first
    assert "Distributed Subplan" not in plan and "INSERT/SELECT method: pull to coordinator" not in plan, plan


def test_a_worker_stopped_mid_run_fails_it_clearly_and_the_next_run_completes(project, db_url, citus_db):
    """A worker stopped while the features (or labels) are computed: the run ends with exit 3
    and an error naming the worker; the stage's transaction leaves nothing behind; with the
    worker back, the next run completes and holds what one server computes."""
    path = project.root / "data" / "raw" / "orders.csv"
    generate_orders.generate(path, rows=60_000, seed=3, days=400)
    single = project.write_config(labels={"horizon_days": 30}, name="single.yaml")
    cluster = project.write_config(labels={"horizon_days": 30}, name="citus.yaml",
                                   distribution={"kind": "citus", "shard_count": 4})
    citus_url = citus_db()
    worker = "worker2"
    runner = Runner(project.root, cluster, citus_url)
    try:
        runner.wait_for(stage_line("features", "running"))
        citus_cluster.stop_node(worker)
        code = runner.wait()
    finally:
        citus_cluster.start_node(worker)
    assert code == EXIT_RUNTIME, runner.output
    failed = runner.find(stage_line("features", "error")) or runner.find(stage_line("labels", "error"))
    assert failed, runner.output
    errors = runner.stderr_path.read_text(encoding="utf-8")
    assert f"127.0.0.1:{citus_cluster.port_of(worker)}" in errors, errors
    stage = re.match(r"^\[(\w+)", failed).group(1)
    history = {"features": "feats.customer_feature_history", "labels": "feats.customer_label_history"}[stage]
    with psycopg.connect(citus_url) as conn:
        # the migrations made the history table; the stage's first run distributes it and fills
        # it: both rolled back, on every node
        count = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(*history.split(".")))
        assert conn.execute(count).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM pg_dist_partition WHERE logicalrelid = %s::regclass",
                            (history,)).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM meta.feature_versions").fetchone() == (0,)

    code, report = run_pipeline(cluster, citus_url)
    assert code == EXIT_PASSED, report.get("errors")
    code, report = run_pipeline(single, db_url)
    assert code == EXIT_PASSED, report.get("errors")
    with snapshot_connection(db_url) as one, snapshot_connection(citus_url) as many:
        for table in ("feats.customer_feature_history", "feats.customer_label_history"):
            assert table_content(many, table) == table_content(one, table), table


def test_a_daily_run_on_citus_equals_one_on_one_server(project, db_url, citus_db):
    """A daily run (a new file beside the published one) on the cluster: only the changed
    customers are recomputed, on their shards, and the new version equals one server's."""
    raw = project.root / "data" / "raw"
    generate_orders.generate(raw / "base.csv", rows=4000, seed=8, start="2024-01-01", days=300)
    generate_orders.generate(raw / "later.tmp", rows=600, seed=9, customers=200, start="2024-10-28", days=10)
    with (raw / "later.tmp").open(encoding="utf-8") as src, (raw / "later.csv").open("w", encoding="utf-8") as dst:
        dst.write(src.readline())
        dst.writelines("N" + line[1:] for line in src)
    configs = {}
    for engine, extra in (("single", {}), ("citus", {"distribution": {"kind": "citus", "shard_count": 4}})):
        for step, paths in (("base", ["data/raw/base.csv"]), ("daily", ["data/raw/base.csv", "data/raw/later.csv"])):
            configs[engine, step] = project.write_config(paths, labels={"horizon_days": 30}, features=FEATURES,
                                                         name=f"{engine}_{step}.yaml", **extra)
    citus_url = citus_db()
    for engine, url in (("single", db_url), ("citus", citus_url)):
        for step in ("base", "daily"):
            code, report = run_pipeline(configs[engine, step], url)
            assert code == EXIT_PASSED, report.get("errors")
        assert report["refresh"]["full"] is False, report["refresh"]

    one, many = published_state(db_url), published_state(citus_url)
    same_content = [name for name in PUBLISHED if name != "feats.training_set"]
    assert differences({name: many[name] for name in same_content}, {name: one[name] for name in same_content}) == []
    with snapshot_connection(db_url) as one_conn, snapshot_connection(citus_url) as many_conn:
        for table in ("feats.customer_feature_history", "feats.customer_label_history",
                      "meta.dataset_split_history"):
            columns = tuple(compared_columns(one_conn, table)) + ("valid_from", "valid_to")
            assert table_content(many_conn, table, columns) == table_content(one_conn, table, columns), table
        cutoffs = "SELECT split, starts_at, row_count, gap_row_count, purged_row_count, censored_row_count" \
                  " FROM meta.split_cutoffs ORDER BY 1, 2 NULLS FIRST, 3, 4, 5, 6"  # both runs, by content
        assert many_conn.execute(cutoffs).fetchall() == one_conn.execute(cutoffs).fetchall()


def test_point_in_time_retrieval_on_the_cluster_equals_one_servers(project, db_url, citus_db):
    """make retrieve on a distributed run: the same features at the same instants as one
    server's, for customers with orders, at an order's instant, between orders, before any
    order, and for a customer without any."""
    edge_case_orders(project)
    single = project.write_config(labels={"horizon_days": 30}, features=FEATURES, name="single.yaml")
    cluster = project.write_config(labels={"horizon_days": 30}, features=FEATURES, name="citus.yaml",
                                   distribution={"kind": "citus", "shard_count": 4})
    citus_url = citus_db()
    for config, url in ((single, db_url), (cluster, citus_url)):
        code, report = run_pipeline(config, url)
        assert code == EXIT_PASSED, report.get("errors")
    entities = project.root / "entities.csv"
    entities.write_text("customer_id,as_of\n"
                        "C_SOLO,2024-06-01T00:00:00Z\nC_SOLO,2024-06-20T12:00:00Z\nC_SOLO,2020-01-01T00:00:00Z\n"
                        "NOBODY,2024-06-01T00:00:00Z\n"
                        + "".join(f"C{n:05d},2024-{m:02d}-15T08:30:00Z\n" for n in range(1, 40) for m in (3, 9)),
                        encoding="utf-8")
    one, many = project.root / "one.csv", project.root / "many.csv"
    assert retrieve(single, entities, one, database_url=db_url) == 82
    assert retrieve(cluster, entities, many, database_url=citus_url) == 82
    assert many.read_text(encoding="utf-8") == one.read_text(encoding="utf-8")
    # by hand: two orders at 2024-06-01 (12.00 and 3.00), 19.5 days earlier: none in 7 days;
    # their average 7.50 in 30 days and ever, 2 distinct amounts ever, 19 days since the first
    lines = one.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    solo = dict(zip(header, next(line for line in lines if line.startswith("C_SOLO,2024-06-20")).split(",")))
    assert {k: solo[k] for k in ("orders_7d", "revenue_7d", "orders_30d", "revenue_30d", "days_since_last_order",
                                 "amounts_7d", "amounts_lifetime", "since_first", "small_share")} \
        == {"orders_7d": "0", "revenue_7d": "0", "orders_30d": "2", "revenue_30d": "15.00",
            "days_since_last_order": "19", "amounts_7d": "0", "amounts_lifetime": "2", "since_first": "19",
            "small_share": ""}
    assert Decimal(solo["basket_30d"]) == Decimal(solo["basket_lifetime"]) == Decimal("7.50")
    nobody = dict(zip(header, next(line for line in lines if line.startswith("NOBODY,")).split(",")))
    assert nobody["orders_7d"] == nobody["amounts_lifetime"] == "0" and nobody["basket_30d"] == ""


def test_the_raw_events_stay_append_only_on_every_shard(project, citus_db):
    """The raw layer's immutability trigger goes with raw.raw_events to every shard: an
    UPDATE or DELETE through the coordinator, or straight on a worker's shard, is refused."""
    edge_case_orders(project)
    config = project.write_config(distribution={"kind": "citus", "shard_count": 4})
    citus_url = citus_db()
    code, report = run_pipeline(config, citus_url, through="ingest")
    assert code == EXIT_PASSED, report.get("errors")
    with psycopg.connect(citus_url, autocommit=True) as conn:
        for statement in ("UPDATE raw.raw_events SET line_number = line_number + 1", "DELETE FROM raw.raw_events"):
            with pytest.raises(psycopg.Error, match="append-only"):
                conn.execute(statement)
        assert conn.execute("SELECT count(*) FROM raw.raw_events").fetchone() == (4004,)
    database = citus_url.rsplit("/", 1)[1]
    for worker in ("worker1", "worker2"):
        with psycopg.connect(citus_cluster.url_of(worker, database), autocommit=True) as conn:
            conn.execute("SET citus.override_table_visibility = off")
            shards = [row[0] for row in conn.execute(
                "SELECT c.oid::regclass::text FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace"
                " WHERE n.nspname = 'raw' AND c.relname ~ '^raw_events_[0-9]+$'").fetchall()]
            assert len(shards) == 2, shards
            for shard in shards:
                with pytest.raises(psycopg.Error, match="append-only"):
                    conn.execute(psycopg.sql.SQL("DELETE FROM {}").format(psycopg.sql.SQL(shard)))


def uci_config(project, name: str, files: list[str], **extra) -> Path:
    """The bundled UCI config (order lines, the invoice's country, features over lines and
    per country) over the given day files of the bundle, without labels, as `name`."""
    import yaml

    from tests.helpers import REPO_ROOT
    bundled = yaml.safe_load((REPO_ROOT / "configs" / "uci_online_retail.yaml").read_text(encoding="utf-8"))
    source = bundled["sources"][0]
    source.update(paths=files, model=str(REPO_ROOT / source["model"]), lines_model=str(REPO_ROOT / source["lines_model"]))
    bundled["expectations"] = str(REPO_ROOT / bundled["expectations"])
    del bundled["labels"]  # the features are what this is about; ten days leave no labelled val split
    path = project.root / name
    path.write_text(yaml.safe_dump({**bundled, **extra}, sort_keys=False), encoding="utf-8")
    return path


def test_lines_attributes_and_entity_features_on_citus_equal_one_server(project, db_url, citus_db):
    """The UCI bundle with its lines, its country attribute and its features over lines and per
    country (an entity other than the customer, read by value across the shards), published
    by a full run and then a daily run (the later days added): on the cluster exactly as on one
    server, the history with its version ranges and the retrieval between orders too."""
    from tests.helpers import REPO_ROOT
    days = sorted(str(p) for p in (REPO_ROOT / "data" / "uci_online_retail" / "by-day").glob("*.csv"))
    citus_url = citus_db()
    for engine, url, extra in (("single", db_url, {}),
                               ("citus", citus_url, {"distribution": {"kind": "citus", "shard_count": 4}})):
        for step, files in (("base", days[:10]), ("daily", days)):
            code, report = run_pipeline(uci_config(project, f"{engine}_{step}.yaml", files, **extra), url)
            assert code == EXIT_PASSED, report.get("errors")
        assert report["refresh"]["full"] is False, report["refresh"]
    with snapshot_connection(db_url) as one_conn, snapshot_connection(citus_url) as many_conn:
        for table in ("stg.order_lines", "feats.customer_feature_history"):
            columns = tuple(compared_columns(one_conn, table))
            assert table_content(many_conn, table, columns) == table_content(one_conn, table, columns), table
        assert one_conn.execute("SELECT count(*), count(DISTINCT country_revenue_7d) FROM feats.customer_features"
                                " WHERE distinct_products_30d < lines_30d").fetchone()[1] > 10
        at = ("SELECT customer_id, as_of, distinct_products_30d, lines_per_order_30d, country_revenue_7d"
              " FROM feats.features_as_of((SELECT array_agg(customer_id ORDER BY customer_id, feature_time)"
              " FROM feats.customer_features), (SELECT array_agg(feature_time + interval '5 hours'"
              " ORDER BY customer_id, feature_time) FROM feats.customer_features)) ORDER BY entity_number")
        assert many_conn.execute(at).fetchall() == one_conn.execute(at).fetchall()
