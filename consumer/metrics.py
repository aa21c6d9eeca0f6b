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
