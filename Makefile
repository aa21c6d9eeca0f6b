# pgtrail: `make demo` sets everything up and runs the pipeline end to end; `make test` runs the suite.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PGTRAIL := $(VENV)/bin/pgtrail

.PHONY: setup start stop status install pipeline pipeline-stop demo test unit integration bench clean

setup:            ## packages, Kafka jars, virtualenv (idempotent)
	scripts/services.sh install

start: setup      ## PostgreSQL (wal2json) and Kafka, started if not running
	scripts/services.sh start

status:
	@scripts/services.sh status; scripts/pipeline.sh status

install: start    ## tracking SQL into the source database, Data Vault into the vault database
	$(PGTRAIL) install all

pipeline: install ## consumer and sink in the background
	scripts/pipeline.sh start

pipeline-stop:
	scripts/pipeline.sh stop

demo: install     ## the main job: workload on the source, history read back from the vault
	@# the demo's slot, left when the pipeline stopped, is lost once later tests or benches write
	@# more WAL than the local cluster keeps for it: dropped (saying so), the consumer makes a new one
	$(PGTRAIL) slots --drop-lost
	scripts/pipeline.sh start
	$(PGTRAIL) demo

stop:             ## stop the pipeline and both services
	scripts/pipeline.sh stop
	scripts/services.sh stop

test: setup       ## the whole suite against the real services (PGTRAIL_TEST_SERVICES=containers: testcontainers where a Docker engine answers)
	@$(PY) -m tests.containers --will-start || scripts/services.sh start
	$(PY) -m pytest

unit: setup
	$(PY) -m pytest tests/unit

integration: start
	$(PY) -m pytest tests/integration

bench: start      ## benchmarks (about 10 minutes): capture (vs pg_recvlogical), vault (vs COPY), latency, log import (vs pgBadger)
	$(PY) -m bench.capture
	$(PY) -m bench.vault
	$(PY) -m bench.latency --seconds 20
	$(PY) -m bench.logs --mb 64   # the 1 GB figure: python -m bench.logs --mb 1024 (docs/log-import.md)

clean: stop
	rm -rf .pgtrail
