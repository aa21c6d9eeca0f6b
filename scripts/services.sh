#!/usr/bin/env bash
# Local services for pgtrail: one PostgreSQL 15 cluster (wal2json, wal_level=logical) holding the
# source and vault databases, and one single-node Apache Kafka 4 broker in KRaft mode built from
# Maven Central jars. Everything lives under $PGTRAIL_HOME (default: .pgtrail/ in the checkout).
#
#   scripts/services.sh install   packages (Debian), Kafka jars (Maven), Python venv
#   scripts/services.sh start     install if needed, init and start both services (idempotent)
#   scripts/services.sh stop      stop both (idempotent)
#   scripts/services.sh status    one line per service; exit 1 if either is down
#   scripts/services.sh restart-kafka | restart-pg
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HOME_DIR="${PGTRAIL_HOME:-$ROOT/.pgtrail}"
PG_PORT="${PGTRAIL_PG_PORT:-54329}"
KAFKA_PORT="${PGTRAIL_KAFKA_PORT:-19092}"
# One setting per service (pgtrail/local.py reads the same ones for every default DSN and
# bootstrap): Kafka's controller and SASL listeners follow PGTRAIL_KAFKA_PORT unless set themselves.
KAFKA_CONTROLLER_PORT="${PGTRAIL_KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
# A second listener with SASL (PLAIN and SCRAM-SHA-256) for the tests of Kafka security settings.
# The account is a local test account, not a secret: it only opens this loopback broker.
KAFKA_SASL_PORT="${PGTRAIL_KAFKA_SASL_PORT:-$((KAFKA_PORT + 2))}"
KAFKA_SASL_USER="pgtrail"
KAFKA_SASL_PASSWORD="pgtrail-local-test"
PG_BIN="/usr/lib/postgresql/15/bin"
PG_DATA="$HOME_DIR/pg/data"
PG_RUN="$HOME_DIR/pg/run"
PG_LOG="$HOME_DIR/pg/postgres.log"
KAFKA_DIR="$HOME_DIR/kafka"
KAFKA_LIB="$KAFKA_DIR/lib"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] error: %s\n' "$*" >&2; exit 1; }

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

install_packages() {
  local need=()
  [ -x "$PG_BIN/pg_ctl" ] || need+=(postgresql-15)
  [ -f /usr/lib/postgresql/15/lib/wal2json.so ] || need+=(postgresql-15-wal2json)
  # pgaudit: its AUDIT lines are one of the log formats `pgtrail import-logs` reads (tests make them)
  [ -f /usr/lib/postgresql/15/lib/pgaudit.so ] || need+=(postgresql-15-pgaudit)
  # pgbadger: the baseline `make bench` measures the log importer against
  command -v pgbadger >/dev/null || need+=(pgbadger)
  command -v promtool >/dev/null || need+=(prometheus)
  command -v java >/dev/null || need+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || need+=(maven)
  # systemd-analyze verifies deploy/systemd units in the tests (a linter: without it that test skips)
  command -v systemd-analyze >/dev/null || need+=(systemd)
  # headless Chromium renders `pgtrail report` pages in the tests (the report is checked in a real browser)
  command -v chromium >/dev/null || need+=(chromium)
  if [ ${#need[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing packages ${need[*]}: run 'make setup' as root or install them"
    log "installing Debian packages: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
  # Debian's postgresql package may create and start a default cluster on 5432; it is not ours
  # and is left alone, but Debian's prometheus service is not wanted here either.
  if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
    systemctl stop prometheus || true
  fi
}

install_kafka_jars() {
  if [ -f "$KAFKA_LIB/.complete" ] && [ "$KAFKA_LIB/.complete" -nt "$ROOT/deploy/kafka/pom.xml" ]; then
    return
  fi
  log "resolving Kafka broker jars from Maven Central into $KAFKA_LIB"
  rm -rf "$KAFKA_LIB"; mkdir -p "$KAFKA_LIB"
  (cd "$ROOT/deploy/kafka" && mvn -q -B dependency:copy-dependencies \
      -DoutputDirectory="$KAFKA_LIB" -DincludeScope=runtime) >&2
  touch "$KAFKA_LIB/.complete"
}

install_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtualenv $VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip >/dev/null
  fi
  if [ ! -f "$VENV/.installed" ] || [ "$ROOT/pyproject.toml" -nt "$VENV/.installed" ]; then
    log "installing pgtrail and its dependencies into $VENV"
    "$VENV/bin/pip" install -q -e "$ROOT[test]" >/dev/null
    touch "$VENV/.installed"
  fi
}

cmd_install() {
  install_packages
  install_kafka_jars
  install_venv
}

# ---------------------------------------------------------------- PostgreSQL
pg_running() { [ -f "$PG_DATA/postmaster.pid" ] && as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; }

pg_init() {
  [ -f "$PG_DATA/PG_VERSION" ] && return
  log "initialising PostgreSQL cluster in $PG_DATA (port $PG_PORT)"
  mkdir -p "$PG_DATA" "$PG_RUN"
  [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$HOME_DIR/pg"
  as_postgres test -w "$PG_DATA" || die "user postgres cannot write $PG_DATA: every parent folder must be searchable by it"
  as_postgres "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
      -E UTF8 --locale=C.UTF-8 >/dev/null
  cat > "$PG_DATA/postgresql.auto.conf" <<EOF
# written by scripts/services.sh
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_RUN'
wal_level = logical
max_replication_slots = 64
max_wal_senders = 64
max_connections = 200
wal_sender_timeout = '60s'
max_slot_wal_keep_size = '4GB'
shared_buffers = '256MB'
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d/%a '
EOF
  # Loopback only. The development superuser connects without a password; every other role
  # (the consumer's replication role, tenant reporting roles) authenticates with SCRAM.
  cat > "$PG_DATA/pg_hba.conf" <<EOF
local   all          all                      trust
host    all          postgres  127.0.0.1/32   trust
host    replication  postgres  127.0.0.1/32   trust
host    all          all       127.0.0.1/32   scram-sha-256
host    replication  all       127.0.0.1/32   scram-sha-256
EOF
  chown postgres:postgres "$PG_DATA/postgresql.auto.conf" "$PG_DATA/pg_hba.conf" 2>/dev/null || true
}

pg_start() {
  if pg_running; then log "PostgreSQL already running on port $PG_PORT"; return; fi
  port_free "$PG_PORT" PGTRAIL_PG_PORT
  pg_init
  mkdir -p "$PG_RUN"; [ "$(id -u)" = 0 ] && chown postgres:postgres "$PG_RUN"
  touch "$PG_LOG"; [ "$(id -u)" = 0 ] && chown postgres:postgres "$PG_LOG"
  # the port given at each start, so a changed PGTRAIL_PG_PORT moves an existing cluster too
  as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -o "-p $PG_PORT" -w -t 60 start >/dev/null \
    || { tail -20 "$PG_LOG" >&2; die "PostgreSQL did not start; see $PG_LOG"; }
  log "PostgreSQL running on 127.0.0.1:$PG_PORT"
}

pg_stop() {
  if pg_running; then as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null; log "PostgreSQL stopped"; fi
}

pg_create_databases() {
  local db
  for db in pgtrail_source pgtrail_vault; do
    if ! psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -tAc "select 1 from pg_database where datname='$db'" | grep -q 1; then
      psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -qc "create database $db" >/dev/null
      log "created database $db"
    fi
  done
}

# ---------------------------------------------------------------- Kafka
kafka_pid() { [ -f "$KAFKA_DIR/kafka.pid" ] && cat "$KAFKA_DIR/kafka.pid"; }
kafka_running() { local p; p="$(kafka_pid 2>/dev/null)" && [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# every port a service binds is checked first: another checkout's or program's service on it
# would otherwise be talked to silently
port_free() {
  if port_open "$1"; then die "port $1 is taken by another process; set $2 to a free port"; fi
}

kafka_configure() {
  mkdir -p "$KAFKA_DIR/data"
  cat > "$KAFKA_DIR/server.properties" <<EOF
# written by scripts/services.sh: single-node KRaft broker+controller on loopback
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT,SASL_PLAINTEXT://127.0.0.1:$KAFKA_SASL_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,SASL_PLAINTEXT://127.0.0.1:$KAFKA_SASL_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$KAFKA_SASL_USER="$KAFKA_SASL_PASSWORD";
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
inter.broker.listener.name=PLAINTEXT
log.dirs=$KAFKA_DIR/data
num.partitions=3
auto.create.topics.enable=true
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
message.max.bytes=10485760
EOF
  if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
    local cid
    cid="$(java -cp "$KAFKA_LIB/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
    java -cp "$KAFKA_LIB/*" kafka.tools.StorageTool format -t "$cid" -c "$KAFKA_DIR/server.properties" >/dev/null 2>&1 \
      || die "formatting Kafka storage failed"
    log "formatted Kafka storage (cluster $cid)"
  fi
}

kafka_start() {
  if kafka_running; then log "Kafka already running on port $KAFKA_PORT"; return; fi
  port_free "$KAFKA_PORT" PGTRAIL_KAFKA_PORT
  port_free "$KAFKA_CONTROLLER_PORT" PGTRAIL_KAFKA_CONTROLLER_PORT
  port_free "$KAFKA_SASL_PORT" PGTRAIL_KAFKA_SASL_PORT
  install_kafka_jars
  kafka_configure
  nohup setsid java -Xms256m -Xmx768m -XX:+UseG1GC -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
      -cp "$KAFKA_LIB/*" kafka.Kafka "$KAFKA_DIR/server.properties" \
      > "$KAFKA_DIR/kafka.log" 2>&1 < /dev/null &
  echo $! > "$KAFKA_DIR/kafka.pid"
  local i
  for i in $(seq 1 120); do
    if port_open "$KAFKA_PORT"; then
      log "Kafka running on 127.0.0.1:$KAFKA_PORT (SASL on $KAFKA_SASL_PORT)"
      kafka_scram_user
      return
    fi
    kafka_running || { tail -20 "$KAFKA_DIR/kafka.log" >&2; die "Kafka exited; see $KAFKA_DIR/kafka.log"; }
    sleep 0.5
  done
  die "Kafka did not open port $KAFKA_PORT within 60 s; see $KAFKA_DIR/kafka.log"
}

# SCRAM credentials live in the cluster metadata; setting them again is harmless.
kafka_scram_user() {
  java -cp "$KAFKA_LIB/*" kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" --alter \
      --add-config "SCRAM-SHA-256=[iterations=8192,password=$KAFKA_SASL_PASSWORD]" \
      --entity-type users --entity-name "$KAFKA_SASL_USER" >/dev/null 2>&1 \
    || log "warning: could not set the SCRAM account of the SASL listener"
}

kafka_stop() {
  if kafka_running; then
    local p; p="$(kafka_pid)"
    kill "$p" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$p" 2>/dev/null || true
    log "Kafka stopped"
  fi
  rm -f "$KAFKA_DIR/kafka.pid"
}

status() {
  local rc=0
  if pg_running; then echo "postgresql  up    127.0.0.1:$PG_PORT  data=$PG_DATA"; else echo "postgresql  down"; rc=1; fi
  if kafka_running && port_open "$KAFKA_PORT"; then echo "kafka       up    127.0.0.1:$KAFKA_PORT  data=$KAFKA_DIR/data"; else echo "kafka       down"; rc=1; fi
  return $rc
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_install; pg_start; pg_create_databases; kafka_start ;;
  stop) kafka_stop; pg_stop ;;
  status) status ;;
  restart-kafka) kafka_stop; kafka_start ;;
  restart-pg) pg_stop; pg_start ;;
  stop-kafka) kafka_stop ;;
  stop-pg) pg_stop ;;
  start-kafka) kafka_start ;;
  start-pg) pg_start ;;
  *) echo "usage: $0 install|start|stop|status|restart-kafka|restart-pg|start-kafka|stop-kafka|start-pg|stop-pg" >&2; exit 2 ;;
esac
