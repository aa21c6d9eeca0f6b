"""A workload shared by the fault tests: transactions of inserts and updates, every tenth rolled
back, that survives the database going away; and the check that the vault equals the source."""
import time

import psycopg

from tests.integration.conftest import wait_until

TXNS, ROWS = 40, 250


def run_workload(pipeline, done, errors):
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


def vault_equals_source(pipeline, timeout=180):
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


def setup(pipeline):
    with pipeline.source() as conn:
        conn.execute("create table fault_t (id int primary key, payload text)")
        conn.execute("select script_tracking.track_table('fault_t')")
