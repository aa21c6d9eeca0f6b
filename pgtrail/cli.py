"""The `pgtrail` command: the one place where each service is wired together."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from pydantic import ValidationError

from pgtrail.errors import Fatal, PgtrailError
from schemas.events import EVENT_KINDS

log = logging.getLogger("pgtrail")


def _metrics_server(port: int) -> None:
    if port:
        from prometheus_client import start_http_server
        start_http_server(port, addr=os.environ.get("PGTRAIL_METRICS_ADDR", "127.0.0.1"))
        log.info("metrics on http://%s:%d/metrics", os.environ.get("PGTRAIL_METRICS_ADDR", "127.0.0.1"), port)


def _on_term(stop) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop())


def cmd_install(args) -> int:
    from consumer.settings import ConsumerSettings
    from pgtrail.install import install, untrackable_tables
    from sink.settings import SinkSettings
    if args.config:
        from pgtrail import config, fleet
        if args.dsn:
            raise Fatal("--dsn and --config exclude each other")
        cfg = config.load(args.config)
        if args.part in ("source", "all"):
            failed = fleet.install_all(cfg, vault=args.part == "all")
            vault_dsn = args.vault_dsn or cfg.sink.vault_dsn.get_secret_value()
            for entry in cfg.sources:
                failed += _vault_reports(entry.dsn.get_secret_value(), vault_dsn, f"{entry.name}: ")
            return 1 if failed else 0
        print(f"vault: applied {', '.join(install(cfg.sink.vault_dsn.get_secret_value(), 'vault'))}")
        return 0
    source_dsn = installed_vault = None
    if args.part in ("source", "all"):
        dsn = source_dsn = args.dsn or ConsumerSettings().source_dsn.get_secret_value()
        print(f"source: applied {', '.join(install(dsn, 'source'))}")
        for table, reason in untrackable_tables(dsn):
            print(f"source: warning: {table} is tracked but its UPDATE and DELETE cannot be captured ({reason})")
    if args.part in ("vault", "all"):
        dsn = installed_vault = (args.dsn if args.part == "vault" else None) or SinkSettings().vault_dsn.get_secret_value()
        print(f"vault: applied {', '.join(install(dsn, 'vault'))}")
    # the original reporting functions in the source database read this vault: --vault-dsn, else
    # the vault `install all` just installed, else PGTRAIL_VAULT_DSN when it is set (never the
    # built-in default for `install source` alone)
    vault_dsn = args.vault_dsn or installed_vault or (SinkSettings().vault_dsn.get_secret_value()
                                                      if os.environ.get("PGTRAIL_VAULT_DSN") else None)
    if source_dsn and vault_dsn:
        return _vault_reports(source_dsn, vault_dsn, "source: ")
    return 0


def _vault_reports(dsn: str, vault_dsn: str, label: str) -> int:
    """Configure the source's reporting functions to read the vault; 1 when that failed."""
    from pgtrail.install import check_vault_reports, configure_vault_reports
    try:
        print(f"{label}{configure_vault_reports(dsn, vault_dsn)}")
    except Fatal as exc:
        print(f"{label}reports: FAILED: {exc}")
        return 1
    problem = check_vault_reports(dsn)
    if problem:
        print(f"{label}warning: reports cannot read the vault yet: {problem}")
    return 0


def cmd_uninstall(args) -> int:
    from consumer.settings import ConsumerSettings
    from pgtrail.install import uninstall
    dsn = args.dsn or ConsumerSettings().source_dsn.get_secret_value()
    uninstall(dsn, "source")
    print("source: pgtrail removed")
    return 0


def _capture_service(settings, kafka, label: str | None = None):
    from consumer.service import CaptureService
    from consumer.source import SourceSession
    from consumer.stream import ReplicationStream
    from publisher import make_publisher

    dsn = settings.source_dsn.get_secret_value()
    stream = ReplicationStream(dsn, settings.slot, settings.status_interval)
    key = settings.redaction_key.get_secret_value().encode() if settings.redaction_key else None
    return CaptureService(stream, make_publisher(kafka, client_id=f"pgtrail-consumer-{label or settings.slot}"),
                          SourceSession(dsn), settings.slot, settings.max_pending_events,
                          settings.heartbeat_interval, key, settings.redaction_policy, label=label)


def _consume_fleet(args) -> int:
    from consumer.fleet import FleetConsumer
    from pgtrail import config
    from publisher.topics import ensure_topics

    cfg = config.load(args.config)
    chosen = cfg.select(args.source, config.parse_shard(args.shard) if args.shard else None)
    per_source = {s.name: cfg.consumer_settings(s) for s in chosen}
    kafka = ensure_topics(cfg.kafka, list(EVENT_KINDS))
    _metrics_server(cfg.consumer.consumer_metrics_port if args.metrics_port is None else args.metrics_port)
    log.info("consuming %d of %d sources: %s", len(chosen), len(cfg.sources), ", ".join(per_source))
    fleet = FleetConsumer(list(per_source), lambda name: _capture_service(per_source[name], kafka, name))
    _on_term(fleet.stop)
    fleet.run()
    return 0


def cmd_consume(args) -> int:
    from consumer.service import CaptureService, run_with_restarts
    from consumer.settings import ConsumerSettings
    from pgtrail.runtime import tune_for_throughput
    from publisher import KafkaSettings
    from publisher.topics import ensure_topics

    tune_for_throughput()
    if args.config:
        return _consume_fleet(args)
    if args.source or args.shard:
        raise Fatal("--source and --shard choose sources of a fleet: they need --config")
    settings, kafka = ConsumerSettings(), KafkaSettings()
    kafka = ensure_topics(kafka, list(EVENT_KINDS))
    _metrics_server(settings.consumer_metrics_port if args.metrics_port is None else args.metrics_port)
    current: list[CaptureService] = []
    stopped = []

    def make() -> CaptureService:
        service = _capture_service(settings, kafka)
        if stopped:
            service.stop()
        current[:] = [service]
        return service

    def stop() -> None:
        stopped.append(True)
        for s in current:
            s.stop()

    _on_term(stop)
    run_with_restarts(make)
    return 0


def cmd_sink(args) -> int:
    from pgtrail.install import connect
    from publisher import KafkaSettings, make_publisher
    from publisher.topics import ensure_topics
    from sink.loader import PairedLoader, connect_vault
    from sink.reader import make_reader
    from sink.service import SinkService
    from sink.settings import SinkSettings
    from pgtrail.runtime import tune_for_throughput

    tune_for_throughput()
    if args.config:
        from pgtrail import config
        cfg = config.load(args.config)
        settings, kafka = cfg.sink, cfg.kafka
    else:
        settings, kafka = SinkSettings(), KafkaSettings()
    ensure_topics(kafka, settings.kinds)
    vault_dsn = settings.vault_dsn.get_secret_value()
    # fail fast with a clear message, naming where the DSN came from (the sink has no --dsn)
    connect(vault_dsn, "vault", f"vault_dsn in [sink] of {args.config}" if args.config else "PGTRAIL_VAULT_DSN").close()
    consumer = make_reader(kafka, settings)
    service = SinkService(consumer, lambda: PairedLoader(lambda: connect_vault(vault_dsn)),
                          make_publisher(kafka, client_id="pgtrail-sink-dlq"),
                          settings.max_batch, settings.poll_timeout_ms, settings.max_event_bytes,
                          settings.poison_ratio_limit, settings.poison_window, vault_inline=True)
    _metrics_server(settings.metrics_port if args.metrics_port is None else args.metrics_port)
    _on_term(service.stop)
    try:
        service.run()
    finally:
        service.close()
        consumer.close()
        service.dead_letters.close()
    return 0


def cmd_status(args) -> int:
    from pgtrail import config, fleet
    cfg = config.load(args.config)
    urls = args.metrics or [f"http://127.0.0.1:{cfg.consumer.consumer_metrics_port}/metrics"]
    rows = fleet.status(cfg, urls)
    print(fleet.render_status(rows, args.json))
    return 0 if all(r.state == "up" and r.wal_status not in ("lost", "missing") for r in rows) else 1


def cmd_slots(args) -> int:
    from consumer.settings import ConsumerSettings
    from pgtrail import config, fleet
    if args.config and args.dsn:
        raise Fatal("--dsn and --config exclude each other")
    if args.config:
        sources = config.load(args.config).sources
        dsns, names = [s.dsn.get_secret_value() for s in sources], [s.slot_name for s in sources]
    else:
        settings = ConsumerSettings()
        dsns, names = [args.dsn or settings.source_dsn.get_secret_value()], [settings.slot]
    problems: list[str] = []
    if args.drop_lost:   # only the slots the configuration names, each in its own database
        for line in fleet.drop_lost_slots(list(zip(dsns, names)), problems):
            print(line, flush=True)
        for p in problems:
            print(f"pgtrail: warning: {p}", file=sys.stderr)
        return 1 if problems else 0
    if args.drop:
        owners = [d for d in dsns if any(r["slot"] == args.drop for r in fleet.list_slots([d], problems, names))]
        if not owners:
            raise Fatal(f"no pgtrail slot named {args.drop!r} on the {len(dsns) - len(problems)} reachable server(s)")
        print(fleet.drop_slot(owners[0], args.drop, args.force, names))
        return 0
    print(fleet.render_slots(fleet.list_slots(dsns, problems, names), args.json))
    for p in problems:
        print(f"pgtrail: warning: not listed, unreachable: {p}", file=sys.stderr)
    return 1 if problems else 0


def cmd_import_logs(args) -> int:
    from pgtrail import importlogs
    if args.check_server:
        advice = importlogs.check_server(args.check_server)
        print(importlogs.render_advice(advice))
        return 0 if all(a.ok for a in advice) else 1
    if not args.files:
        raise Fatal("name the log files to import (or --check-server DSN)")
    publisher = None
    pool = importlogs.worker_pool(args.jobs)   # first: forked before the Kafka client's threads exist
    try:
        if not args.dry_run:
            from publisher import KafkaSettings, make_publisher
            from publisher.topics import ensure_topics
            kafka = KafkaSettings()
            ensure_topics(kafka, ["log_import"])
            publisher = make_publisher(kafka, client_id="pgtrail-import-logs")
    except BaseException:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        raise
    results = []
    try:
        for path in args.files:
            results.append(importlogs.import_file(path, publisher, server=args.server, log_format=args.format,
                                                  prefix=args.prefix, pool=pool, jobs=args.jobs))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        if publisher is not None:
            publisher.close()
    failed = 0
    for r in results:
        verb = "parsed (dry run)" if args.dry_run else f"{r.published} published"
        print(f"{r.path}: {verb}; {r.report.summary()}")
        if r.error:
            failed += 1
            print(f"{r.path}: NOT IMPORTED: {r.error}")
    return 1 if failed else 0


def cmd_history(args) -> int:
    from pgtrail import history
    from pgtrail.install import connect
    from sink.settings import SinkSettings
    dsn = args.dsn or SinkSettings().vault_dsn.get_secret_value()
    with connect(dsn, "vault") as conn:
        rows = history.fetch(conn, args.object, args.database, args.limit, args.simulated)
    print(history.render_json(rows) if args.json else history.render_table(rows))
    return 0


def cmd_show(args) -> int:
    import json

    from pgtrail import schema_diff
    from pgtrail.install import connect
    from sink.settings import SinkSettings
    at = schema_diff.parse_time(args.at)
    with connect(args.dsn or SinkSettings().vault_dsn.get_secret_value(), "vault") as conn:
        found = schema_diff.definition_at(conn, args.object, at, args.database)
    if found is None:
        print(f"{args.object}: no definition in the vault at {at.isoformat()}")
        return 1
    if args.json:
        print(json.dumps(found, default=str, indent=1))
    else:
        state = " (dropped)" if found["dropped"] else ""
        print(f"-- {args.object} in {found['database']} as of {found['effective_at'].isoformat()}{state}")
        print("\n".join(schema_diff.render(found["definition"])))
    return 0


def cmd_diff(args) -> int:
    from pgtrail import schema_diff
    from pgtrail.install import connect
    from sink.settings import SinkSettings
    t1, t2 = schema_diff.parse_time(args.from_), schema_diff.parse_time(args.to)
    with connect(args.dsn or SinkSettings().vault_dsn.get_secret_value(), "vault") as conn:
        before = schema_diff.definition_at(conn, args.object, t1, args.database)
        after = schema_diff.definition_at(conn, args.object, t2, args.database)
    print(schema_diff.diff(args.object, before, after, t1, t2))
    return 0


def cmd_dashboard(args) -> int:
    from pgtrail import reports
    from pgtrail.install import connect
    from sink.settings import SinkSettings
    with connect(args.dsn or SinkSettings().vault_dsn.get_secret_value(), "vault") as conn:
        rows = reports.dashboard(conn, args.days, args.simulated)
    print(reports.render_json(rows) if args.json else reports.render_dashboard(rows))
    return 0


def cmd_executions(args) -> int:
    from pgtrail import reports
    from pgtrail.install import connect
    from sink.settings import SinkSettings
    with connect(args.dsn or SinkSettings().vault_dsn.get_secret_value(), "vault") as conn:
        rows = reports.executions(conn, args.limit, args.script, args.status, args.tenant, args.simulated)
    print(reports.render_json(rows) if args.json else reports.render_rows(rows, reports.EXECUTION_COLUMNS))
    return 0


def cmd_report(args) -> int:
    from pgtrail import reports
    from pgtrail.install import connect
    from sink.settings import SinkSettings
    with connect(args.dsn or SinkSettings().vault_dsn.get_secret_value(), "vault") as conn:
        html = reports.html_report(conn, args.days, args.simulated)
    with open(args.output, "w", encoding="utf-8") as fh:
        fh.write(html)
    print(f"report written to {args.output}")
    return 0


def cmd_tail(args) -> int:
    from pgtrail import tail
    from publisher import KafkaSettings
    return tail.follow(KafkaSettings(), args.kind, args.database, args.object, args.json, args.from_beginning,
                       args.max_events)


def cmd_migrate(args) -> int:
    from pathlib import Path

    from consumer.settings import ConsumerSettings
    from pgtrail import migrate, tables
    from pgtrail.install import connect
    dsn = args.dsn or ConsumerSettings().source_dsn.get_secret_value()
    with connect(dsn, "source") as conn:
        migrator = migrate.Migrator(conn, migrate.load_folder(Path(args.dir)), args.ticket, args.justification,
                                    args.tenant)
        if args.action == "status":
            rows = migrator.status()
            print(tables.to_json(rows) if args.json else tables.render(rows, [
                ("file", "file"), ("version", "version"), ("state", "state"), ("applied (UTC)", "applied_at"),
                ("by", "applied_by"), ("ms", "duration_ms")], empty="(no migrations in the folder)"))
            return 0
        if args.action == "validate":
            problems = migrator.validate()
            pending = [s["file"] for s in migrator.status() if s["state"].startswith("pending")]
            for p in problems:
                print(f"invalid: {p}")
            print(f"{len(pending)} pending: {', '.join(pending)}" if pending else "nothing pending")
            return 1 if problems else 0
        applied = migrator.apply()
        if not applied:
            print("nothing to apply: the database is up to date")
        return 0


def cmd_drift(args) -> int:
    from consumer.settings import ConsumerSettings
    from pgtrail import drift, tables
    from pgtrail.install import connect
    from sink.settings import SinkSettings
    source_dsn = args.dsn or ConsumerSettings().source_dsn.get_secret_value()
    vault_dsn = args.vault_dsn or SinkSettings().vault_dsn.get_secret_value()
    with connect(source_dsn, "source") as source, \
            connect(vault_dsn, "vault", "--vault-dsn or PGTRAIL_VAULT_DSN") as vault:
        found = drift.find(source, vault)
    print(tables.to_json(found) if args.json else drift.render(found))
    return 1 if found else 0


def cmd_demo(args) -> int:
    from pgtrail.demo import run_demo
    return run_demo(timeout=args.timeout)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pgtrail", description="Change and operation tracking for PostgreSQL fleets.")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("install", help="install or upgrade the tracking SQL (idempotent)")
    s.add_argument("part", choices=["source", "vault", "all"], nargs="?", default="all")
    s.add_argument("--dsn", help="overrides PGTRAIL_SOURCE_DSN / PGTRAIL_VAULT_DSN")
    s.add_argument("--config", help="fleet file: install on every source (and the vault of [sink])")
    s.add_argument("--vault-dsn", help="with source/all: the vault the source's get_execution_history() and "
                                       "get_enterprise_dashboard() read (default: PGTRAIL_VAULT_DSN if set, or "
                                       "the fleet file's [sink] vault_dsn); a read-only role is enough")
    s.set_defaults(func=cmd_install)

    s = sub.add_parser("uninstall", help="remove the tracking SQL from a source database (idempotent)")
    s.add_argument("part", choices=["source"])
    s.add_argument("--dsn", help="overrides PGTRAIL_SOURCE_DSN")
    s.set_defaults(func=cmd_uninstall)

    s = sub.add_parser("consume", help="stream the source's slot into Kafka (settings from PGTRAIL_*)")
    s.add_argument("--config", help="fleet file: one replication stream per source database")
    s.add_argument("--source", action="append", help="with --config: only this source (repeatable)")
    s.add_argument("--shard", help="with --config: K/N, this process takes the K-th of N shares of the sources")
    s.add_argument("--metrics-port", type=int, help="overrides the configured metrics port (several processes "
                                                    "on one host sharing one fleet file); 0 disables it")
    s.set_defaults(func=cmd_consume)

    s = sub.add_parser("sink", help="load Kafka events into the Data Vault (settings from PGTRAIL_SINK_*)")
    s.add_argument("--config", help="fleet file: its [kafka] and [sink] sections")
    s.add_argument("--metrics-port", type=int, help="overrides the configured metrics port; 0 disables it")
    s.set_defaults(func=cmd_sink)

    s = sub.add_parser("status", help="every source of a fleet: server, slot, lag, last event, heartbeat age")
    s.add_argument("--config", required=True, help="fleet file")
    s.add_argument("--metrics", action="append",
                   help="consumer metrics URL to read event and heartbeat ages from (repeatable; default "
                        "http://127.0.0.1:<consumer_metrics_port>/metrics)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_status)

    s = sub.add_parser("import-logs", help="import PostgreSQL server logs (stderr, csvlog, jsonlog; gzip) as "
                                           "historical events; --check-server says what to log")
    s.add_argument("files", nargs="*", metavar="FILE")
    s.add_argument("--format", choices=["stderr", "csvlog", "jsonlog"], help="default: detected per file")
    s.add_argument("--prefix", help="the server's log_line_prefix (stderr); default: detected")
    s.add_argument("--server", default="unknown",
                   help="name of the cluster the logs come from (its system identifier is a good one); part of "
                        "every event id, so use the same one each time")
    s.add_argument("--dry-run", action="store_true", help="parse and report, publish nothing")
    s.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="processes parsing a large uncompressed log side by side (default: the number of CPUs); "
                        "the events are the same as with 1")
    s.add_argument("--check-server", metavar="DSN", help="show the server's logging settings and what to change")
    s.set_defaults(func=cmd_import_logs)

    s = sub.add_parser("slots", help="list pgtrail's replication slots, or drop one")
    s.add_argument("--config", help="fleet file: the clusters of all its sources")
    s.add_argument("--dsn", help="one server (default PGTRAIL_SOURCE_DSN)")
    drop = s.add_mutually_exclusive_group()
    drop.add_argument("--drop", metavar="SLOT", help="drop this slot (refused while a consumer streams it)")
    drop.add_argument("--drop-lost", action="store_true",
                      help="drop the configured slots (PGTRAIL_SLOT, or the fleet file's) whose WAL is gone "
                           "(wal_status lost: they can never stream again); their consumers then start from now, "
                           "so re-baseline what was missed")
    s.add_argument("--force", action="store_true", help="with --drop: end the session streaming it first")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_slots)

    s = sub.add_parser("history", help="tracked history from the vault")
    s.add_argument("object", nargs="?", help="schema.table (or table) to restrict to")
    s.add_argument("--database")
    s.add_argument("--limit", type=int, default=1000)
    s.add_argument("--simulated", action="store_true",
                   help="include simulated history (import_historical_operations(days, true)), marked [SIMULATED]")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--dsn", help="vault DSN; overrides PGTRAIL_VAULT_DSN")
    s.set_defaults(func=cmd_history)

    def vault_dsn_and_json(p):
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.add_argument("--dsn", help="vault DSN; overrides PGTRAIL_VAULT_DSN")

    s = sub.add_parser("show", help="an object's definition at a point in time (from the vault)")
    s.add_argument("object", help="identity as PostgreSQL prints it, e.g. public.customers")
    s.add_argument("--at", help="ISO 8601 time; default now")
    s.add_argument("--database")
    vault_dsn_and_json(s)
    s.set_defaults(func=cmd_show)

    s = sub.add_parser("diff", help="how an object's definition changed between two points in time")
    s.add_argument("object")
    s.add_argument("--from", dest="from_", required=True, help="ISO 8601 time")
    s.add_argument("--to", help="ISO 8601 time; default now")
    s.add_argument("--database")
    s.add_argument("--dsn", help="vault DSN; overrides PGTRAIL_VAULT_DSN")
    s.set_defaults(func=cmd_diff)

    s = sub.add_parser("dashboard", help="the enterprise dashboard (script_tracking.get_enterprise_dashboard)")
    s.add_argument("--days", type=int, default=30)
    s.add_argument("--simulated", action="store_true",
                   help="include simulated history (import_historical_operations), marked; left out by default")
    vault_dsn_and_json(s)
    s.set_defaults(func=cmd_dashboard)

    s = sub.add_parser("executions", help="script execution history (script_tracking.get_execution_history)")
    s.add_argument("--limit", type=int, default=50)
    s.add_argument("--script")
    s.add_argument("--status", choices=["started", "completed", "failed", "abandoned"])
    s.add_argument("--tenant")
    s.add_argument("--simulated", action="store_true",
                   help="include simulated history (import_historical_operations), marked; left out by default")
    vault_dsn_and_json(s)
    s.set_defaults(func=cmd_executions)

    s = sub.add_parser("report", help="write one self-contained HTML page: figures, charts and tables from the vault")
    s.add_argument("-o", "--output", default="pgtrail-report.html")
    s.add_argument("--days", type=int, default=30)
    s.add_argument("--simulated", action="store_true",
                   help="include simulated history (import_historical_operations), marked; left out by default")
    s.add_argument("--dsn", help="vault DSN; overrides PGTRAIL_VAULT_DSN")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("tail", help="follow events live from Kafka")
    s.add_argument("--kind", action="append", help="ddl, dml, operation, script, heartbeat, security (repeatable)")
    s.add_argument("--database")
    s.add_argument("--object", help="schema.table or another object identity")
    s.add_argument("--json", action="store_true", help="one JSON event per line")
    s.add_argument("--from-beginning", action="store_true")
    s.add_argument("--max-events", type=int, default=0, help="stop after this many (0: follow forever)")
    s.set_defaults(func=cmd_tail)

    s = sub.add_parser("migrate", help="tracked migrations from a folder of V<version>__x.sql / R__x.sql files")
    s.add_argument("action", choices=["status", "apply", "validate"])
    s.add_argument("--dir", default="migrations", help="the folder of migration files")
    s.add_argument("--ticket", help="ticket for migrations whose header names none")
    s.add_argument("--justification", help="business justification, likewise")
    s.add_argument("--tenant")
    s.add_argument("--json", action="store_true")
    s.add_argument("--dsn", help="overrides PGTRAIL_SOURCE_DSN")
    s.set_defaults(func=cmd_migrate)

    s = sub.add_parser("drift", help="objects whose live definition differs from what the migrations produced")
    s.add_argument("--json", action="store_true")
    s.add_argument("--dsn", help="source DSN; overrides PGTRAIL_SOURCE_DSN")
    s.add_argument("--vault-dsn", help="overrides PGTRAIL_VAULT_DSN")
    s.set_defaults(func=cmd_drift)

    s = sub.add_parser("demo", help="run the demo workload on the source and show what reached the vault")
    s.add_argument("--timeout", type=float, default=90.0)
    s.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else getattr(logging, os.environ.get("PGTRAIL_LOG_LEVEL", "INFO").upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("kafka").setLevel(max(level, logging.WARNING))
    try:
        return args.func(args)
    except PgtrailError as exc:
        print(f"pgtrail: error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err.get("loc", ())) or exc.title
        print(f"pgtrail: error: invalid setting {where}: {err.get('msg')}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
