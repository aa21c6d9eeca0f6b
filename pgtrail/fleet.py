"""Fleet-wide operations: install on every source, each source's status, pgtrail's slots."""
from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import asdict, dataclass
from typing import Iterable, Iterator

import psycopg
from prometheus_client.parser import text_string_to_metric_families

from pgtrail.config import FleetConfig
from pgtrail.dsn import describe_dsn
from pgtrail.errors import Fatal
from pgtrail.install import install, untrackable_tables


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


def install_all(cfg: FleetConfig, vault: bool) -> int:
    """Install or upgrade the tracking SQL on every source; one failure never stops the others.
    Returns the number of failures."""
    failures = 0
    for entry in cfg.sources:
        dsn = entry.dsn.get_secret_value()
        try:
            applied = install(dsn, "source")
            print(f"{entry.name}: source: applied {', '.join(applied) or 'nothing (up to date)'}")
            for table, reason in untrackable_tables(dsn):
                print(f"{entry.name}: warning: {table} is tracked but its UPDATE and DELETE cannot be captured ({reason})")
        except Exception as exc:  # noqa: BLE001 - reported per source; the others go on
            failures += 1
            print(f"{entry.name}: FAILED on {describe_dsn(dsn)}: {_short(exc)}")
    if vault:
        dsn = cfg.sink.vault_dsn.get_secret_value()
        try:
            print(f"vault: applied {', '.join(install(dsn, 'vault')) or 'nothing (up to date)'}")
        except Exception as exc:  # noqa: BLE001
            failures += 1
            print(f"vault: FAILED on {describe_dsn(dsn)}: {_short(exc)}")
    return failures


@dataclass
class SourceStatus:
    name: str
    database: str | None = None
    state: str = "unknown"              # up | down
    error: str | None = None
    tracking_version: int | None = None
    slot: str | None = None
    slot_active: bool | None = None
    wal_status: str | None = None
    lag_bytes: int | None = None
    safe_wal_bytes: int | None = None
    consumer_up: bool | None = None     # from the consumer's metrics, when reachable
    last_event_age_s: float | None = None
    heartbeat_age_s: float | None = None


def _scrape(urls: list[str]) -> dict[tuple[str, str], float]:
    """(metric, database) -> value from every reachable consumer metrics endpoint."""
    found: dict[tuple[str, str], float] = {}
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                text = resp.read().decode()
        except OSError:
            continue
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                db = sample.labels.get("database")
                if db is not None:
                    found[(sample.name, db)] = sample.value
    return found


def probe(name: str, dsn: str, slot: str) -> SourceStatus:
    """One source's server, slot and tracking SQL as they stand (no consumer metrics): `state`
    down with the error when the server cannot be reached, `wal_status` missing when no slot."""
    st = SourceStatus(name, slot=slot)
    try:
        with psycopg.connect(dsn, connect_timeout=5, autocommit=True, application_name="pgtrail-status") as conn:
            st.state = "up"
            st.database = conn.info.dbname
            row = conn.execute(
                "select active, wal_status, safe_wal_size, "
                "       pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint "
                "from pg_replication_slots where slot_name = %s", (slot,)).fetchone()
            if row:
                st.slot_active, st.wal_status, st.safe_wal_bytes, st.lag_bytes = row
            else:
                st.wal_status = "missing"
            try:
                st.tracking_version = conn.execute(
                    "select max(version) from script_tracking.install_history").fetchone()[0]
            except psycopg.Error:
                st.tracking_version = None
    except psycopg.Error as exc:
        st.state, st.error = "down", _short(exc)
    return st


def status(cfg: FleetConfig, metrics_urls: list[str]) -> list[SourceStatus]:
    scraped = _scrape(metrics_urls)
    now = time.time()
    rows = []
    for entry in cfg.sources:
        st = probe(entry.name, entry.dsn.get_secret_value(), entry.slot_name)
        up = scraped.get(("pgtrail_consumer_source_up", entry.name))
        st.consumer_up = None if up is None else up == 1
        for attr, metric in (("last_event_age_s", "pgtrail_consumer_last_event_timestamp_seconds"),
                             ("heartbeat_age_s", "pgtrail_consumer_last_heartbeat_timestamp_seconds")):
            ts = scraped.get((metric, entry.name))
            if ts:
                setattr(st, attr, round(now - ts, 1))
        rows.append(st)
    return rows


def _bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.0f} TB"


def _age(s: float | None) -> str:
    return "-" if s is None else (f"{s:.0f}s" if s < 120 else f"{s / 60:.0f}m")


def render_status(rows: list[SourceStatus], as_json: bool) -> str:
    if as_json:
        return json.dumps([asdict(r) for r in rows], indent=1)
    head = ("SOURCE", "DATABASE", "SERVER", "SLOT", "SLOT STATE", "LAG", "CONSUMER", "LAST EVENT", "HEARTBEAT",
            "PROBLEM")
    lines = [head]
    for r in rows:
        slot_state = "-" if r.state != "up" else (
            r.wal_status if r.wal_status in ("missing", "lost") else
            f"{'active' if r.slot_active else 'inactive'}/{r.wal_status}")
        consumer = "-" if r.consumer_up is None else ("streaming" if r.consumer_up else "DOWN")
        problem = r.error or {"lost": "slot lost: changes since its confirmed position are gone",
                              "missing": "no slot yet: the consumer creates it when it starts"}.get(r.wal_status or "", "")
        if r.state == "up" and r.tracking_version is None:
            problem = problem or "tracking SQL not installed: pgtrail install --config ..."
        lines.append((r.name, r.database or "-", r.state.upper() if r.state != "up" else "up", r.slot or "-",
                      slot_state, _bytes(r.lag_bytes), consumer, _age(r.last_event_age_s),
                      _age(r.heartbeat_age_s), problem))
    widths = [max(len(str(row[i])) for row in lines[:]) if i < len(head) - 1 else 0 for i in range(len(head))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in lines)


# ------------------------------------------------------------------ slots

def list_slots(dsns: list[str], problems: list[str] | None = None, names: Iterable[str] = ()) -> list[dict]:
    """pgtrail's slots on every distinct cluster: wal2json slots named pgtrail* or named by
    pgtrail's configuration (`names`: PGTRAIL_SLOT, the fleet file's slots). A server that cannot
    be reached is added to `problems` (when given) and the others still listed."""
    rows, seen = [], set()
    for dsn in dsns:
        try:
            conn = psycopg.connect(dsn, connect_timeout=5, autocommit=True)
        except psycopg.Error as exc:
            if problems is None:
                raise Fatal(f"cannot list slots on {describe_dsn(dsn)}: {_short(exc)}") from exc
            problems.append(f"{describe_dsn(dsn)}: {_short(exc)}")
            continue
        with conn:
            system_id = conn.execute("select system_identifier::text from pg_control_system()").fetchone()[0]
            for r in conn.execute(
                    "select slot_name, database, active, active_pid, confirmed_flush_lsn::text, wal_status, "
                    "       pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint, safe_wal_size "
                    "from pg_replication_slots where plugin = 'wal2json' "
                    "and (slot_name like 'pgtrail%%' or slot_name = any(%s)) order by slot_name",
                    (list(names),)).fetchall():
                if (system_id, r[0]) in seen:
                    continue
                seen.add((system_id, r[0]))
                rows.append(dict(zip(("slot", "database", "active", "active_pid", "confirmed_lsn", "wal_status",
                                      "lag_bytes", "safe_wal_bytes"), r), server=describe_dsn(dsn)))
    return rows


def render_slots(rows: list[dict], as_json: bool) -> str:
    if as_json:
        return json.dumps(rows, indent=1, default=str)
    head = ("SLOT", "DATABASE", "ACTIVE", "CONFIRMED", "LAG", "WAL", "SERVER")
    lines = [head] + [(r["slot"], r["database"], "yes" if r["active"] else "no", r["confirmed_lsn"] or "-",
                       _bytes(r["lag_bytes"]), r["wal_status"] or "-", r["server"]) for r in rows]
    widths = [max(len(str(row[i])) for row in lines) for i in range(len(head))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in lines)


def drop_lost_slots(sources: list[tuple[str, str]], problems: list[str]) -> Iterator[str]:
    """Drop the configured slots whose WAL is gone: `sources` are (DSN, slot name) pairs, each slot
    looked for in its DSN's database only. A lost slot (wal_status 'lost') can never stream again,
    and its consumer stops on it until it is dropped; the consumer then creates the slot from the
    current position, so each line says after which position changes were not captured.

    Yields one line per slot as soon as it is dropped (a later failure never hides it). A server
    that cannot be reached, or a lost slot that something still streams, goes to `problems` and
    the others go on."""
    for dsn, slot in sources:
        try:
            with psycopg.connect(dsn, connect_timeout=5, autocommit=True) as conn:
                row = conn.execute(
                    "select database, confirmed_flush_lsn::text, active_pid from pg_replication_slots "
                    "where slot_name = %s and database = current_database() and plugin = 'wal2json' "
                    "and wal_status = 'lost'", (slot,)).fetchone()
                if row is None:
                    continue
                database, lsn, pid = row
                if pid is not None:
                    problems.append(f"lost slot {slot} on {describe_dsn(dsn)} is still in use by pid {pid}: "
                                    "not dropped")
                    continue
                conn.execute("select pg_drop_replication_slot(%s)", (slot,))
        except psycopg.errors.ObjectInUse:
            problems.append(f"lost slot {slot} on {describe_dsn(dsn)} was taken by a session meanwhile: not dropped")
            continue
        except psycopg.Error as exc:
            problems.append(f"{describe_dsn(dsn)}: {_short(exc)}")
            continue
        yield (f"dropped lost slot {slot} of {database} on {describe_dsn(dsn)}: changes after "
               f"{lsn or 'its start'} were not captured (re-baseline them if they matter)")


def drop_slot(dsn: str, slot: str, force: bool, names: Iterable[str] = ()) -> str:
    """Drop one of pgtrail's slots. An active slot (a consumer is streaming it) is refused unless
    `force`, which ends that walsender first; the consumer then recreates the slot from now on,
    so the changes in between are not captured — which is why it is never the default."""
    with psycopg.connect(dsn, connect_timeout=5, autocommit=True) as conn:
        row = conn.execute("select plugin, active_pid from pg_replication_slots where slot_name = %s",
                           (slot,)).fetchone()
        if row is None:
            raise Fatal(f"no slot named {slot!r} on {describe_dsn(dsn)}")
        plugin, pid = row
        if plugin != "wal2json" or not (slot.startswith("pgtrail") or slot in set(names)):
            raise Fatal(f"slot {slot!r} is not one of pgtrail's (plugin {plugin}): not dropping it")
        if pid is not None:
            if not force:
                raise Fatal(f"slot {slot!r} is in use by pid {pid}: stop its consumer first, "
                                      "or pass --force to end that session")
            conn.execute("select pg_terminate_backend(%s)", (pid,))
            for _ in range(50):
                if conn.execute("select active from pg_replication_slots where slot_name = %s",
                                (slot,)).fetchone()[0] is False:
                    break
                time.sleep(0.1)
        conn.execute("select pg_drop_replication_slot(%s)", (slot,))
    return f"dropped slot {slot} on {describe_dsn(dsn)}"
