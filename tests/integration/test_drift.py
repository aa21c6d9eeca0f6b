"""`pgtrail drift` on whole migration histories: like compared with like for every object kind,
pgtrail's own DDL (install, tracking trigger) never drift, one manual change found exactly."""
import json
from pathlib import Path

import pytest

from tests.integration.conftest import wait_until
from tests.integration.test_migrations import run

HISTORIES = Path(__file__).parent / "fixtures" / "migrations"


def drift(env) -> tuple[int, list[dict], str]:
    rc, out, err = run(env, "drift", "--json")
    assert rc in (0, 1), f"drift crashed (rc {rc}): {err[-2000:]}"
    return rc, json.loads(out), err


def drifted(env) -> list[str]:
    return sorted(d["object"] for d in drift(env)[1])


@pytest.mark.parametrize("history, manual, changed, tracking_ddl", [
    # orders: its tracking trigger and its special-numbers trigger (numeric total); users: one
    ("storefront", "alter table orders add column note text", "public.orders", 3),
    ("auth", "create index sessions_created on auth.sessions (created_at)", "auth.sessions_created", 2),
])
def test_a_migration_history_has_no_drift_until_one_manual_change(pipeline, history, manual, changed, tracking_ddl):
    pipeline.start("consumer")
    pipeline.start("sink")
    rc, out, err = run(pipeline.env, "migrate", "apply", "--dir", str(HISTORIES / history))
    assert rc == 0, err
    assert len(out.splitlines()) == 5, out
    wait_until(lambda: pipeline.vault_count("select count(*) from vault.sat_script_execution "
                                            "where status = 'completed'") == 5, 60, what="five completed migrations")
    # tracking a table by hand and reinstalling pgtrail are pgtrail's own DDL, not drift
    with pipeline.source() as conn:
        table = "users" if history == "storefront" else "auth.users"
        conn.execute("select script_tracking.track_table(%s)", (table,))
    rc, _, err = run(pipeline.env, "install", "source")
    assert rc == 0, err
    wait_until(lambda: pipeline.vault_count("select count(*) from vault.sat_ddl where managed_by = 'pgtrail install'"),
               60, what="the reinstall's DDL in the vault")
    wait_until(lambda: pipeline.vault_count("select count(*) from vault.sat_ddl where managed_by = 'pgtrail tracking'")
               == tracking_ddl, 60, what="the tracking triggers' DDL in the vault")
    assert pipeline.vault_count("select count(*) from vault.sat_ddl where untracked") == 0
    rc, found, _ = drift(pipeline.env)
    assert (rc, found) == (0, []), found
    # the history's objects were compared (not skipped): each kind is in the vault with a definition
    kinds = {r for (r,) in pipeline.vault().execute(
        "select distinct definition->>'kind' from vault.sat_ddl where definition is not null").fetchall()}
    assert {"table", "index", "function"} <= kinds, kinds

    with pipeline.source() as conn:
        conn.execute("set application_name = 'psql-by-hand'")
        conn.execute(manual)
    wait_until(lambda: pipeline.vault_count("select count(*) from vault.sat_ddl where untracked") == 1, 60,
               what="the manual change flagged untracked")
    rc, found, _ = drift(pipeline.env)
    assert rc == 1
    assert [d["object"] for d in found] == [changed], found
    assert [m["statement"] for m in found[0]["manual_changes"]] == [manual]
    rc, out, _ = run(pipeline.env, "drift")
    assert f"{changed}: " in out and manual in out


def test_drift_on_quoted_names_and_aggregates(pipeline, tmp_path):
    """Identities that are not relation names (a trigger whose name has spaces and the word "on",
    an aggregate) are looked up, never parsed: no crash, no false drift, a rename found."""
    pipeline.start("consumer")
    pipeline.start("sink")
    d = tmp_path / "m"
    d.mkdir()
    (d / "V1__agg.sql").write_text(
        "create table t (id int primary key, v int);\n"
        "create aggregate total_of (int) (sfunc = int4pl, stype = int);\n"
        "create trigger \"odd name on t\" before update on t for each row execute function suppress_redundant_updates_trigger();\n")
    assert run(pipeline.env, "migrate", "apply", "--dir", str(d))[0] == 0
    wait_until(lambda: pipeline.vault_count("select count(*) from vault.sat_script_execution "
                                            "where status = 'completed'") == 1, 60, what="the migration")
    wait_until(lambda: drift(pipeline.env)[1] == [], 30, what="no drift after the migration")
    with pipeline.source() as conn:
        conn.execute('alter trigger "odd name on t" on t rename to "odder name"')
    wait_until(lambda: drifted(pipeline.env) == ['"odd name on t" on public.t', '"odder name" on public.t'], 60,
               what="the renamed trigger as drift under both names")
