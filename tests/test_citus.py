"""The pipeline on a local Citus cluster (scripts/citus_cluster.py: a coordinator and two
workers on localhost, Citus 14 built from ../shared/vendor/citus/ on first use).

Selected with -m citus (left out with -m 'not citus'). The cluster is started for the suite
when it is not running, and stopped again afterwards; every test gets databases of its own
on every node.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest

from scripts import citus_cluster, generate_orders, migrate
from scripts.run import EXIT_PASSED, run_pipeline
from tests.crash_helpers import PUBLISHED, REGISTRY, differences, published_state

pytestmark = pytest.mark.citus


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
