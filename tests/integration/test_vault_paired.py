"""Overlapped loading (sink.loader.PairedLoader, SinkService with it) on the real vault: the same
rows as loading batch after batch, replays change nothing, a batch the vault refuses after it was
staged leaves nothing behind and the sessions go on, and the sink dead-letters exactly the event
the vault refuses while every other event lands once and every offset is committed."""
from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from sink.loader import RECORD_SOURCE, PairedLoader, VaultLoader, rows_for
from sink.reader import ListReader
from sink.service import SinkService
from tests.conftest import dsn
from tests.integration.conftest import _drop_database, _new_database
from tests.unit.conftest import normalize

FIXTURE = Path(__file__).parents[1] / "unit" / "fixtures" / "wal2json_v2_tracked.jsonl"


@pytest.fixture
def events():
    return normalize(FIXTURE.read_text().splitlines())[0]


@pytest.fixture
def second_vault():
    name = _new_database("vault")
    yield name
    _drop_database(name)


def contents(db: str) -> dict[str, list]:
    """Every vault table's rows but the install's own (load_ts left out: when, not what), sorted."""
    with psycopg.connect(dsn(db)) as conn:
        tables = [t for (t,) in conn.execute("select table_name from information_schema.tables "
                                             "where table_schema = 'vault' and table_type = 'BASE TABLE' "
                                             "and table_name <> 'install_history'")]
        out = {}
        for t in tables:
            cols = [c for (c,) in conn.execute("select column_name from information_schema.columns where "
                                               "table_schema = 'vault' and table_name = %s and column_name <> "
                                               "'load_ts' order by ordinal_position", (t,))]
            rows = conn.execute(f"select {', '.join(cols)} from vault.{t}").fetchall()
            out[t] = sorted(rows, key=repr)
        return out


def load_paired(loader: PairedLoader, evs: list, batch: int) -> set:
    """As the sink's vault thread does: stage N, see N-1 committed, send N."""
    new, before = set(), None
    for i in range(0, len(evs), batch):
        staged = loader.stage(evs[i:i + batch])
        if before is not None:
            new |= before.result()
        staged.send()
        before = staged
    return new | before.result()


def test_paired_sessions_write_exactly_what_sequential_loading_writes(vault_db, second_vault, events):
    sequential = VaultLoader(psycopg.connect(dsn(vault_db), autocommit=True))
    for i in range(0, len(events), 7):
        sequential.load(events[i:i + 7])
    sequential.close()
    paired = PairedLoader(lambda: psycopg.connect(dsn(second_vault), autocommit=True))
    try:
        assert load_paired(paired, events, 7) == {e.event_id for e in events}
        expected = contents(vault_db)
        assert expected["link_event"] and expected["sat_object_definition"] and expected["link_script_event"]
        assert contents(second_vault) == expected
        assert load_paired(paired, events, 5) == set()    # a replay, in other batches: nothing new
        assert contents(second_vault) == expected
    finally:
        paired.close()


def test_a_batch_mixing_events_the_vault_has_with_new_ones_writes_and_reports_only_the_new(vault_db, second_vault,
                                                                                            events):
    """Each batch goes in by plain INSERT first; the one holding events already loaded is refused
    by the unique key and goes again the ON CONFLICT way from its savepoint."""
    sequential = VaultLoader(psycopg.connect(dsn(vault_db), autocommit=True))
    sequential.load(events)
    sequential.close()
    paired = PairedLoader(lambda: psycopg.connect(dsn(second_vault), autocommit=True))
    try:
        assert load_paired(paired, events[:10], 7) == {e.event_id for e in events[:10]}
        assert load_paired(paired, events, 7) == {e.event_id for e in events[10:]}   # batch 7..13 is mixed
        assert contents(second_vault) == contents(vault_db)
    finally:
        paired.close()


def test_a_batch_refused_after_staging_leaves_nothing_and_the_sessions_go_on(vault_db, events):
    paired = PairedLoader(lambda: psycopg.connect(dsn(vault_db), autocommit=True))
    try:
        dml = [e for e in events if e.kind == "dml"][:5]
        rows = rows_for(dml, RECORD_SOURCE)
        bad = list(rows["link_event"][2])
        bad[21] = None                       # a row change without its operation: staging takes it,
        rows["link_event"][2] = tuple(bad)   # the link's check (link_event_row_change) refuses it
        staged = paired.stage(dml, rows)
        staged.send()
        with pytest.raises(psycopg.errors.CheckViolation, match="link_event_row_change"):
            staged.result()
        assert all(not r for r in contents(vault_db).values())   # nothing of the batch, not even its hubs
        assert load_paired(paired, events, 7) == {e.event_id for e in events}   # both sessions go on
    finally:
        paired.close()


class _DeadLetters:
    def __init__(self):
        self.origins: list[str] = []

    def dead_letter(self, raw: bytes, reason: str, origin: str, on_delivery) -> None:
        self.origins.append(origin)
        on_delivery(None)

    def flush(self, timeout=None) -> None:
        pass


@pytest.mark.parametrize("inline", [True, False], ids=["vault-inline", "vault-thread"])
def test_the_sink_dead_letters_the_one_event_the_vault_refuses_and_loads_every_other(vault_db, events, caplog,
                                                                                      inline):
    """The refused event fails its batch after staging (a trigger stands in for a vault rule):
    that batch is loaded again the sequential way, event by event, and only that one is
    dead-lettered; every batch's offsets are committed, in order."""
    victim = [e for e in events if e.kind == "dml"][-1]   # in the third batch of six
    with psycopg.connect(dsn(vault_db), autocommit=True) as conn:
        conn.execute(f"""
            create function vault.refuse_one() returns trigger language plpgsql as $$
            begin
                if new.hk_event = '\\x{victim_hk(victim)}'::bytea then
                    raise exception 'refused by a test rule' using errcode = '22023';
                end if;
                return new;
            end $$;
            create trigger refuse_one before insert on vault.link_event
                for each row execute function vault.refuse_one()""")
    bodies = [e.model_dump_json().encode() for e in events]
    reader, dead = ListReader(bodies, 6), _DeadLetters()
    caplog.set_level("INFO", logger="sink.service")
    service = SinkService(reader, lambda: PairedLoader(lambda: psycopg.connect(dsn(vault_db), autocommit=True)),
                          dead, max_batch=6, poll_timeout_ms=0, sleep=lambda s: None, vault_inline=inline)
    try:
        service.run(until=reader.done)
    finally:
        service.close()
    assert [r.message for r in caplog.records if "failed in the vault" in r.message], "not the overlapped way"
    assert dead.origins == [str(victim.event_id)]
    assert reader.commits == sorted(reader.commits) and reader.commits[-1] == len(bodies)
    with psycopg.connect(dsn(vault_db)) as conn:
        ids = [r[0] for r in conn.execute("select event_id from vault.link_event")]
    assert sorted(ids) == sorted(e.event_id for e in events if e.event_id != victim.event_id)


def victim_hk(event) -> str:
    from sink.hashing import hk_event
    return hk_event(event.event_id).hex()
