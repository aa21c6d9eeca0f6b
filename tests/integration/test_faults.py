"""Faults around the pipeline: the broker and the database restarted under load, one huge
transaction. The vault is compared with the source itself: every committed change exactly once,
nothing from rolled-back transactions."""
import threading
import time

from tests import containers
from tests.integration.conftest import wait_until
from tests.integration.workload import run_workload, setup, vault_equals_source
from tests.integration.conftest import BOTH_DRIVERS

pytestmark = BOTH_DRIVERS

def _under_load(pipeline, fault):
    setup(pipeline)
    pipeline.start("consumer")
    pipeline.start("sink")
    done, errors = threading.Event(), []
    worker = threading.Thread(target=run_workload, args=(pipeline, done, errors))
    worker.start()
    time.sleep(1.5)
    fault()
    worker.join(240)
    assert done.is_set() and not errors, errors
    vault_equals_source(pipeline)
    for name in ("consumer", "sink"):
        assert pipeline.procs[name].poll() is None, f"{name} died: {pipeline.log(name)}"


def test_the_kafka_broker_restarted_under_load(pipeline):
    _under_load(pipeline, lambda: containers.restart("kafka"))


def test_the_database_server_restarted_under_load(pipeline):
    """Source and vault on the shared cluster: both restart at once (each alone: below)."""
    _under_load(pipeline, lambda: containers.restart("pg"))


def test_a_long_workload_through_every_fault_in_turn(pipeline):
    """More than 100k row changes, DDL and operations, while in turn: the consumer is SIGKILLed
    twice, the sink twice, the broker restarts, the database server (source and vault) restarts."""
    setup(pipeline)
    pipeline.start("consumer")
    pipeline.start("sink")
    done, errors = threading.Event(), []
    worker = threading.Thread(target=run_workload, args=(pipeline, done, errors),
                              kwargs={"txns": 200, "rows": 600, "ddl_every": 25})
    worker.start()
    faults = [lambda: (pipeline.kill("consumer"), pipeline.start("consumer")),
              lambda: (pipeline.kill("sink"), pipeline.start("sink")),
              lambda: containers.restart("kafka"),
              lambda: (pipeline.kill("consumer"), pipeline.start("consumer")),
              lambda: containers.restart("pg"),
              lambda: (pipeline.kill("sink"), pipeline.start("sink"))]
    for fault in faults:
        time.sleep(2.5)
        fault()
    worker.join(600)
    assert done.is_set() and not errors, errors
    changes = vault_equals_source(pipeline, rows_per_txn=600, timeout=480)
    with pipeline.vault() as v:
        ddl = v.execute("select count(*) from vault.sat_ddl where object_identity = 'public.fault_t' "
                        "and command_tag = 'ALTER TABLE'").fetchone()[0]
        ops = v.execute("select count(*) from vault.sat_operation where name like 'batch %'").fetchone()[0]
    with pipeline.source() as conn:
        columns = conn.execute("select count(*) from information_schema.columns where table_name = 'fault_t' "
                               "and column_name like 'extra_%'").fetchone()[0]
    assert ddl == ops == columns  # DDL and operations of committed transactions, once each
    assert changes >= 100_000
    print(f"{changes:,} row changes, {ddl} DDL, {ops} operations through 6 faults: none lost, none doubled")


def test_one_huge_transaction_keeps_the_consumer_small(pipeline):
    setup(pipeline)
    pipeline.start("consumer")
    pid = pipeline.procs["consumer"].pid

    def peak_rss_mb():
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    with pipeline.source() as conn:
        conn.execute("insert into fault_t select g, 'x' from generate_series(1, 2000) g")
    wait_until(lambda: pipeline.topic_size("dml") >= 2000, 120, what="the small transaction on Kafka")
    small = peak_rss_mb()
    n = 1_000_000
    with pipeline.source() as conn:
        conn.execute("insert into fault_t select g, repeat('y', 200) from generate_series(10001, 10000 + %s::int) g",
                     (n,))
    wait_until(lambda: pipeline.topic_size("dml") >= 2000 + n, 1200, interval=5,
               what=f"the {n:,}-row transaction on Kafka")
    big = peak_rss_mb()
    print(f"consumer peak RSS: {small:.0f} MB after 2,000 rows, {big:.0f} MB after one {n:,}-row transaction")
    assert big < 200, big
    assert pipeline.topic_size("dml") == 2000 + n  # every event, once (no restart happened)


def test_the_vault_server_restarted_alone_under_load(pipeline, spare_cluster):
    """The vault on a cluster of its own (the spare one), restarted while the source keeps
    committing: the sink retries its batch, commits offsets only after the vault does, and the
    vault ends up with every change once."""
    import psycopg
    spare_cluster.start()
    vault_db = "pgtrail_fault_vault"
    with psycopg.connect(spare_cluster.dsn(), autocommit=True) as admin:
        admin.execute(f"drop database if exists {vault_db} with (force)")
        admin.execute(f"create database {vault_db}")
    from pgtrail.install import install
    install(spare_cluster.dsn(vault_db), "vault")
    pipeline.env["PGTRAIL_VAULT_DSN"] = spare_cluster.dsn(vault_db)
    pipeline.vault = lambda: psycopg.connect(spare_cluster.dsn(vault_db), autocommit=True)
    try:
        _under_load(pipeline, spare_cluster.start)
        with pipeline.source() as conn:  # the source was never touched: the same server since before
            assert conn.execute("select pg_postmaster_start_time() < now() - interval '5 seconds'").fetchone()[0]
        assert "vault unavailable" in pipeline.log("sink"), "the restart did not hit the sink mid-load"
    finally:
        pipeline.stop_all()
        with psycopg.connect(spare_cluster.dsn(), autocommit=True) as admin:
            admin.execute(f"drop database if exists {vault_db} with (force)")


def test_the_source_server_restarted_alone_under_load(pipeline, spare_cluster):
    """The source on a cluster of its own (the spare one, with wal2json), restarted while it
    commits: the consumer reconnects and resumes from the slot's confirmed position; the vault
    (on the shared cluster, never restarted) ends up with every committed change once."""
    import psycopg
    spare_cluster.start()
    source_db = "pgtrail_fault_source"
    with psycopg.connect(spare_cluster.dsn(), autocommit=True) as admin:
        admin.execute(f"drop database if exists {source_db} with (force)")
        admin.execute(f"create database {source_db}")
    from pgtrail.install import install
    install(spare_cluster.dsn(source_db), "source")
    pipeline.env["PGTRAIL_SOURCE_DSN"] = spare_cluster.dsn(source_db)
    pipeline.source = lambda **kw: psycopg.connect(spare_cluster.dsn(source_db), autocommit=True, **kw)
    try:
        _under_load(pipeline, spare_cluster.start)
        assert "restarting from the confirmed position" in pipeline.log("consumer"), \
            "the restart did not interrupt the consumer"
    finally:
        pipeline.stop_all()
        with psycopg.connect(spare_cluster.dsn(), autocommit=True) as admin:
            admin.execute("select pg_drop_replication_slot(slot_name) from pg_replication_slots where database = %s",
                          (source_db,))
            admin.execute(f"drop database if exists {source_db} with (force)")
