"""Every consumer metric, declared once. Dashboards and alert rules use only these names."""
from prometheus_client import Counter, Gauge

EVENTS_CONSUMED = Counter("pgtrail_consumer_events_total", "Events decoded from the replication stream (simulated "
                          "history under kind log_import_simulated)",
                          ["database", "kind"])
EVENTS_PUBLISHED = Counter("pgtrail_consumer_events_published_total",
                           "Events acknowledged by Kafka", ["database", "kind"])
DEAD_LETTERS = Counter("pgtrail_consumer_dead_letters_total",
                       "WAL lines that could not become events, sent to the dead-letter topic", ["database"])
ERRORS = Counter("pgtrail_consumer_errors_total", "Errors by class (retryable, poison, fatal)",
                 ["database", "class"])
LAG_BYTES = Gauge("pgtrail_consumer_replication_lag_bytes",
                  "Server WAL end minus the LSN confirmed to the slot", ["database"])
CONFIRMED_LSN = Gauge("pgtrail_consumer_confirmed_lsn", "Last LSN confirmed to the slot (as a number)",
                      ["database"])
PENDING_EVENTS = Gauge("pgtrail_consumer_pending_events", "Events sent to Kafka and not yet acknowledged",
                       ["database"])
ROWS_UNTRACKED = Counter("pgtrail_consumer_rows_untracked_total",
                         "Row changes of tables that are not tracked, skipped by design", ["database"])
SECURITY_EVENTS = Counter("pgtrail_consumer_security_events_total",
                          "Messages with pgtrail's prefix that the tracking functions did not write", ["database"])
HEARTBEAT_RTT = Gauge("pgtrail_consumer_heartbeat_rtt_seconds",
                      "From writing a heartbeat in the source to reading it from the slot", ["database"])
LAST_HEARTBEAT = Gauge("pgtrail_consumer_last_heartbeat_timestamp_seconds",
                       "Unix time when the last heartbeat was read from the slot", ["database"])
UNTRACKED_DDL = Counter("pgtrail_consumer_untracked_ddl_total",
                        "DDL that no tracked script or migration ran (drift as it happens)", ["database"])
SENSITIVE_CHANGES = Counter("pgtrail_consumer_sensitive_changes_total",
                            "Row changes of tables with sensitive columns, by class", ["database", "class"])
SLOT_SAFE_WAL_BYTES = Gauge("pgtrail_consumer_slot_safe_wal_bytes",
                            "WAL that may still be written before the slot is lost (max_slot_wal_keep_size)",
                            ["database", "slot"])
SLOT_LOST = Gauge("pgtrail_consumer_slot_lost", "1 when the slot's WAL was removed: changes are lost",
                  ["database", "slot"])
SOURCE_UP = Gauge("pgtrail_consumer_source_up",
                  "1 while the source's replication stream is open; 0 while it is down and being retried",
                  ["database"])
SOURCE_RESTARTS = Counter("pgtrail_consumer_source_restarts_total",
                          "Times a source's capture loop failed and was started again", ["database"])
OVERSIZE_VALUES = Counter("pgtrail_consumer_oversize_values_total",
                          "Values left out of events (and referenced) because the event exceeded Kafka's message "
                          "limit", ["database"])
UNCAPTURABLE_STATEMENTS = Counter("pgtrail_consumer_uncapturable_statements_total",
                                  "UPDATE/DELETE statements on tracked tables with no replica identity (no primary "
                                  "key): wal2json sends none of their rows", ["database", "table"])
LAST_EVENT = Gauge("pgtrail_consumer_last_event_timestamp_seconds",
                   "Unix time when the last event other than a heartbeat was read from the slot", ["database"])
