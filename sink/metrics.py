"""Every sink metric, declared once. Dashboards and alert rules use only these names."""
from prometheus_client import Counter, Gauge, Histogram

EVENTS_LOADED = Counter("pgtrail_sink_events_loaded_total", "Events newly written to the vault", ["kind"])
EVENTS_DUPLICATE = Counter("pgtrail_sink_events_duplicate_total",
                           "Events received again and ignored (already in the vault)")
DEAD_LETTERS = Counter("pgtrail_sink_dead_letters_total", "Messages sent to the dead-letter topic", ["reason"])
ERRORS = Counter("pgtrail_sink_errors_total", "Errors by class (retryable, poison, fatal)", ["class"])
BATCH_SECONDS = Histogram("pgtrail_sink_batch_seconds", "Time to load and commit one batch",
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
LAST_COMMIT = Gauge("pgtrail_sink_last_commit_timestamp_seconds", "Unix time of the last committed batch")
POISON_RATIO = Gauge("pgtrail_sink_poison_ratio", "Share of the recent records that were dead-lettered")
ASSIGNED_PARTITIONS = Gauge("pgtrail_sink_assigned_partitions",
                            "Partitions this sink holds in the consumer group (several sinks share them)")
