"""Faults around the pipeline: the broker and the database restarted under load, one huge
transaction. The vault is compared with the source itself: every committed change exactly once,
nothing from rolled-back transactions."""
import subprocess
import threading
import time

import psycopg

from tests.integration.conftest import ROOT, wait_until

TXNS, ROWS = 40, 250


def _workload(pipeline, done, errors):
    """Inserts, updates and rollbacks; survives the database going away and keeps going."""
    t = 0
    while t < TXNS:
        try:
            with pipeline.source() as conn:
                while t < TXNS:
                    with conn.transaction(force_rollback=(t % 10 == 9)):
                        base = t * ROWS
                        conn.execute("insert into fault_t (id, payload) select g, md5(g::text) from "
                                     "generate_series(%s::int, %s::int) g on conflict do nothing", (base, base + ROWS - 1))
                        if t % 3 == 0:
                            conn.execute("update fault_t set payload = 'updated' where id between %s::int and %s::int "
                                         "and payload <> 'updated'", (base, base + ROWS - 1))
                    t += 1
                    time.sleep(0.05)
        except psycopg.OperationalError:
            time.sleep(0.5)  # the server restarts: reconnect; an interrupted transaction did not commit
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
            break
    done.set()


def _vault_equals_source(pipeline, timeout=180):
    with psycopg.connect(pipeline.env["PGTRAIL_SOURCE_DSN"]) as conn:
        ids = {r[0] for r in conn.execute("select id from fault_t")}
        updated = conn.execute("select count(*) from fault_t where payload = 'updated'").fetchone()[0]
    total = len(ids) + updated
    wait_until(lambda: pipeline.vault_count("select count(*) from vault.sat_row_change where table_name = 'fault_t'")
               >= total, timeout, what=f"{total} row changes in the vault")
    time.sleep(2)
    with pipeline.vault() as v:
        rows = v.execute("select operation, (primary_key->>'id')::int from vault.sat_row_change "
                         "where table_name = 'fault_t'").fetchall()
    inserts = [i for op, i in rows if op == "insert"]
    assert len(inserts) == len(set(inserts)), "an insert loaded twice"
    assert set(inserts) == ids, "the vault's inserts differ from the source's rows"
    assert sum(op == "update" for op, _ in rows) == updated
    assert all(i // ROWS % 10 != 9 for i in inserts)  # nothing of a rolled-back transaction


def _setup(pipeline):
    with pipeline.source() as conn:
        conn.execute("create table fault_t (id int primary key, payload text)")
        conn.execute("select script_tracking.track_table('fault_t')")


def _under_load(pipeline, fault):
    _setup(pipeline)
    pipeline.start("consumer")
    pipeline.start("sink")
    done, errors = threading.Event(), []
    worker = threading.Thread(target=_workload, args=(pipeline, done, errors))
    worker.start()
    time.sleep(1.5)
    fault()
    worker.join(240)
    assert done.is_set() and not errors, errors
    _vault_equals_source(pipeline)
    for name in ("consumer", "sink"):
        assert pipeline.procs[name].poll() is None, f"{name} died: {pipeline.log(name)}"


def test_the_kafka_broker_restarted_under_load(pipeline):
    _under_load(pipeline, lambda: subprocess.run([str(ROOT / "scripts" / "services.sh"), "restart-kafka"],
                                                 check=True, capture_output=True))


def test_the_database_server_restarted_under_load(pipeline):
    """Source and vault share this cluster: both restart at once."""
    _under_load(pipeline, lambda: subprocess.run([str(ROOT / "scripts" / "services.sh"), "restart-pg"],
                                                 check=True, capture_output=True))


def test_one_huge_transaction_keeps_the_consumer_small(pipeline):
    _setup(pipeline)
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
    n = 150_000
    with pipeline.source() as conn:
        conn.execute("insert into fault_t select g, repeat('y', 200) from generate_series(10001, 10000 + %s::int) g",
                     (n,))
    wait_until(lambda: pipeline.topic_size("dml") >= 2000 + n, 600, interval=2,
               what=f"the {n:,}-row transaction on Kafka")
    big = peak_rss_mb()
    print(f"consumer peak RSS: {small:.0f} MB after 2,000 rows, {big:.0f} MB after one {n:,}-row transaction")
    assert big < 200, big
    assert pipeline.topic_size("dml") == 2000 + n  # every event, once (no restart happened)
