"""Writes pgtrail-dashboard.json (importable into Grafana; datasource chosen at import).

Run `python deploy/grafana/build_dashboard.py` after changing the panels; the JSON is committed
so operators need nothing but Grafana. Every metric used is declared in consumer/metrics.py or
sink/metrics.py (tests/integration/test_observability.py checks it).
"""
import json
from pathlib import Path

PANELS = [
    # (title, unit, [(expr, legend)], width)
    ("Events captured per second, by kind", "ops",
     [("sum by (kind) (rate(pgtrail_consumer_events_published_total[1m]))", "{{kind}}")], 12),
    ("Events loaded into the vault per second, by kind", "ops",
     [("sum by (kind) (rate(pgtrail_sink_events_loaded_total[1m]))", "{{kind}}"),
      ("sum(rate(pgtrail_sink_events_duplicate_total[1m]))", "repeats ignored")], 12),
    ("Sources streaming (1) or down and retried (0)", "short",
     [("pgtrail_consumer_source_up", "{{database}}")], 12),
    ("Seconds since each source's last event", "s",
     [("time() - pgtrail_consumer_last_event_timestamp_seconds", "{{database}}"),
      ("sum by (database) (increase(pgtrail_consumer_source_restarts_total[1h]))", "restarts/h {{database}}")], 12),
    ("Replication lag (WAL not yet confirmed)", "bytes",
     [("pgtrail_consumer_replication_lag_bytes", "{{database}}")], 8),
    ("Slot WAL headroom before invalidation", "bytes",
     [("pgtrail_consumer_slot_safe_wal_bytes", "{{database}} {{slot}}")], 8),
    ("Heartbeat round trip", "s",
     [("pgtrail_consumer_heartbeat_rtt_seconds", "{{database}}"),
      ("time() - pgtrail_consumer_last_heartbeat_timestamp_seconds", "age {{database}}")], 8),
    ("Events waiting for Kafka", "short", [("pgtrail_consumer_pending_events", "{{database}}")], 8),
    ("Vault batch latency (p50, p99)", "s",
     [("histogram_quantile(0.5, sum by (le) (rate(pgtrail_sink_batch_seconds_bucket[5m])))", "p50"),
      ("histogram_quantile(0.99, sum by (le) (rate(pgtrail_sink_batch_seconds_bucket[5m])))", "p99")], 8),
    ("Seconds since the last vault commit", "s",
     [("time() - pgtrail_sink_last_commit_timestamp_seconds", "sink")], 8),
    ("Untracked DDL (drift) per hour", "short",
     [("sum by (database) (increase(pgtrail_consumer_untracked_ddl_total[1h]))", "{{database}}")], 8),
    ("Sensitive-data changes per second, by class", "ops",
     [("sum by (database, class) (rate(pgtrail_consumer_sensitive_changes_total[5m]))", "{{database}} {{class}}")], 8),
    ("Security events (untrusted messages)", "short",
     [("sum by (database) (increase(pgtrail_consumer_security_events_total[1h]))", "{{database}}")], 8),
    ("Dead letters and errors", "short",
     [("sum by (reason) (increase(pgtrail_sink_dead_letters_total[1h]))", "sink: {{reason}}"),
      ("sum by (database) (increase(pgtrail_consumer_dead_letters_total[1h]))", "consumer: {{database}}"),
      ("sum by (class) (increase(pgtrail_sink_errors_total[1h]))", "sink error: {{class}}"),
      ("sum by (class) (increase(pgtrail_consumer_errors_total[1h]))", "consumer error: {{class}}")], 12),
    ("Rows of untracked tables skipped", "ops",
     [("sum by (database) (rate(pgtrail_consumer_rows_untracked_total[5m]))", "{{database}}")], 12),
]


def build() -> dict:
    panels, x, y = [], 0, 0
    for i, (title, unit, targets, width) in enumerate(PANELS, start=1):
        if x + width > 24:
            x, y = 0, y + 8
        panels.append({
            "id": i, "type": "timeseries", "title": title,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"x": x, "y": y, "w": width, "h": 8},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
            "targets": [{"refId": chr(65 + j), "expr": expr, "legendFormat": legend,
                         "datasource": {"type": "prometheus", "uid": "${datasource}"}}
                        for j, (expr, legend) in enumerate(targets)],
        })
        x += width
    return {
        "title": "pgtrail", "uid": "pgtrail-overview", "schemaVersion": 39, "version": 1,
        "tags": ["pgtrail", "postgresql", "audit"], "timezone": "utc", "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus",
                                 "label": "Prometheus"}]},
        "panels": panels,
    }


if __name__ == "__main__":
    out = Path(__file__).with_name("pgtrail-dashboard.json")
    out.write_text(json.dumps(build(), indent=1) + "\n")
    print(f"wrote {out}")
