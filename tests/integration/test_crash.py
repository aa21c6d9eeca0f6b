"""Nothing lost, nothing doubled: the consumer and the sink SIGKILLed mid-stream and restarted."""
import random
import threading
import time

from tests.integration.conftest import wait_until

TXNS = 60
ROWS_PER_TXN = 250


def _workload(pipeline, done: threading.Event, errors: list):
    """Inserts TXNS x ROWS_PER_TXN rows, updates every third transaction's rows and rolls back
    every tenth transaction (whose rows must never appear)."""
    try:
        with pipeline.source() as conn:
            for t in range(TXNS):
                with conn.transaction(force_rollback=(t % 10 == 9)):
                    base = t * ROWS_PER_TXN
                    conn.execute("insert into crash_t (id, payload) select g, md5(g::text) "
                                 "from generate_series(%s::int, %s::int) g", (base, base + ROWS_PER_TXN - 1))
                    if t % 3 == 0:
                        conn.execute("update crash_t set payload = 'updated' where id between %s::int and %s::int",
                                     (base, base + ROWS_PER_TXN - 1))
                time.sleep(0.05)
    except Exception as exc:  # noqa: BLE001 - reported by the test
        errors.append(exc)
    finally:
        done.set()


def _expected():
    inserted = [t for t in range(TXNS) if t % 10 != 9]
    updates = [t for t in inserted if t % 3 == 0]
    return len(inserted) * ROWS_PER_TXN, len(updates) * ROWS_PER_TXN, inserted


def _check_vault(pipeline):
    n_ins, n_upd, committed = _expected()
    total = n_ins + n_upd
    wait_until(lambda: pipeline.vault_count(
        "select count(*) from vault.sat_row_change where table_name = 'crash_t'") >= total, 120,
        what=f"{total} row changes in the vault")
    time.sleep(2)  # anything extra (a duplicate) would arrive now
    with pipeline.vault() as v:
        counts = dict(v.execute("select operation, count(*) from vault.sat_row_change "
                                "where table_name = 'crash_t' group by 1").fetchall())
        dupes = v.execute("select primary_key, operation, count(*) from vault.sat_row_change "
                          "where table_name = 'crash_t' group by 1, 2 having count(*) > 1 limit 5").fetchall()
        ids = {r[0] for r in v.execute("select (primary_key->>'id')::int from vault.sat_row_change "
                                       "where table_name = 'crash_t' and operation = 'insert'").fetchall()}
    assert dupes == [], f"the same change loaded twice: {dupes}"
    assert counts == {"insert": n_ins, "update": n_upd}
    expected_ids = {t * ROWS_PER_TXN + i for t in committed for i in range(ROWS_PER_TXN)}
    assert ids == expected_ids  # nothing lost, nothing from rolled-back transactions
    with pipeline.source() as conn:
        src = conn.execute("select count(*), count(*) filter (where payload = 'updated') from crash_t").fetchone()
    assert src == (n_ins, n_upd)


def _setup(pipeline):
    with pipeline.source() as conn:
        conn.execute("create table crash_t (id int primary key, payload text)")
        conn.execute("select script_tracking.track_table('crash_t')")


def test_consumer_sigkill_loses_nothing_and_duplicates_nothing(pipeline):
    _setup(pipeline)
    pipeline.start("consumer")
    pipeline.start("sink")
    done, errors = threading.Event(), []
    worker = threading.Thread(target=_workload, args=(pipeline, done, errors))
    worker.start()
    kills = 0
    rng = random.Random(7)
    while not done.is_set() or kills < 3:
        time.sleep(rng.uniform(0.3, 1.2))
        pipeline.kill("consumer")  # SIGKILL: no flush, no goodbye
        kills += 1
        pipeline.start("consumer")
    worker.join()
    assert not errors, errors
    assert kills >= 3
    _check_vault(pipeline)
    on_kafka = pipeline.topic_size("dml")
    print(f"consumer SIGKILLed {kills} times; {on_kafka} DML messages on Kafka for "
          f"{sum(_expected()[:2])} distinct changes (the surplus is replay the vault ignored)")


def test_sink_sigkill_loses_nothing_and_duplicates_nothing(pipeline):
    _setup(pipeline)
    pipeline.start("consumer")
    pipeline.start("sink")
    done, errors = threading.Event(), []
    worker = threading.Thread(target=_workload, args=(pipeline, done, errors))
    worker.start()
    kills = 0
    rng = random.Random(11)
    while not done.is_set() or kills < 3:
        time.sleep(rng.uniform(0.3, 1.2))
        pipeline.kill("sink")
        kills += 1
        pipeline.start("sink")
    worker.join()
    assert not errors, errors
    _check_vault(pipeline)
