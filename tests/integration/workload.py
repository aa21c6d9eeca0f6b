"""A workload shared by the fault tests: transactions of inserts and updates, every tenth rolled
back, now and then a DDL or an operation; it survives the database going away. And the check that
the vault equals the source: every committed change exactly once, nothing rolled back."""
import hashlib
import time

import psycopg

from tests.integration.conftest import wait_until


def setup(pipeline):
    with pipeline.source() as conn:
        conn.execute("create table fault_t (id int primary key, payload text)")
        conn.execute("select script_tracking.track_table('fault_t')")


def run_workload(pipeline, done, errors, txns=40, rows=250, ddl_every=0):
    """Transaction t inserts `rows` rows; every third also updates them; every tenth rolls back.
    With ddl_every, every so many transactions add a column and track an operation."""
    t = 0
    while t < txns:
        try:
            with pipeline.source() as conn:
                while t < txns:
                    with conn.transaction(force_rollback=(t % 10 == 9)):
                        base = t * rows
                        conn.execute("insert into fault_t (id, payload) select g, md5(g::text) from "
                                     "generate_series(%s::int, %s::int) g on conflict do nothing", (base, base + rows - 1))
                        if t % 3 == 0:
                            conn.execute("update fault_t set payload = 'updated' where id between %s::int and %s::int "
                                         "and payload <> 'updated'", (base, base + rows - 1))
                        if ddl_every and t % ddl_every == ddl_every - 1:
                            conn.execute(f"alter table fault_t add column if not exists extra_{t} int")
                            conn.execute("select track_operation(%s, 'LOAD')", (f"batch {t}",))
                    t += 1
                    time.sleep(0.05)
        except psycopg.OperationalError:
            time.sleep(0.5)  # the server restarts: reconnect; an interrupted transaction did not commit
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
            break
    done.set()


def _checksum(pairs) -> str:
    return hashlib.sha256("\n".join(f"{i}:{p}" for i, p in sorted(pairs)).encode()).hexdigest()


def vault_equals_source(pipeline, rows_per_txn=250, timeout=180):
    with psycopg.connect(pipeline.env["PGTRAIL_SOURCE_DSN"]) as conn:
        source = dict(conn.execute("select id, payload from fault_t").fetchall())
        updated = sum(p == "updated" for p in source.values())
    total = len(source) + updated
    wait_until(lambda: pipeline.vault_count("select count(*) from vault.sat_row_change where table_name = 'fault_t'")
               >= total, timeout, interval=1, what=f"{total} row changes in the vault")
    time.sleep(2)
    with pipeline.vault() as v:
        changes = v.execute("select operation, (primary_key->>'id')::int, new_values->>'payload' "
                            "from vault.sat_row_change r join vault.sat_event s using (hk_event) "
                            "where table_name = 'fault_t' order by s.commit_lsn, s.position").fetchall()
    inserts = [i for op, i, _ in changes if op == "insert"]
    assert len(inserts) == len(set(inserts)), "an insert loaded twice"
    assert set(inserts) == set(source), "the vault's inserts differ from the source's rows"
    assert sum(op == "update" for op, _, _ in changes) == updated, "updates lost or doubled"
    assert all(i // rows_per_txn % 10 != 9 for i in inserts)  # nothing of a rolled-back transaction
    replayed = {}
    for _, i, payload in changes:  # the table rebuilt from the vault, change by change
        replayed[i] = payload
    assert _checksum(replayed.items()) == _checksum(source.items()), "rebuilt from the vault, the table differs"
    return len(changes)
