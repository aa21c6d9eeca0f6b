"""Every consumer metric, declared once. Dashboards and alert rules use only these names."""
from prometheus_client import Counter, Gauge

EVENTS_CONSUMED = Counter("pgtrail_consumer_events_total", "Events decoded from the replication stream",
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
