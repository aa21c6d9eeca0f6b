#!/usr/bin/env bash
# Start/stop the pgtrail consumer and sink as background processes (pid files and logs under
# $PGTRAIL_HOME). Settings come from PGTRAIL_* variables; the defaults match scripts/services.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HOME_DIR="${PGTRAIL_HOME:-$ROOT/.pgtrail}"
RUN="$HOME_DIR/run"; LOG="$HOME_DIR/log"
PGTRAIL="$ROOT/.venv/bin/pgtrail"
mkdir -p "$RUN" "$LOG"
# a stable member id: a restarted sink takes its partitions back at once (static membership)
export PGTRAIL_SINK_INSTANCE_ID="${PGTRAIL_SINK_INSTANCE_ID:-$(hostname)-sink-1}"

running() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

start_one() {
  local name=$1 cmd=$2 port=$3
  if running "$name"; then echo "[pipeline] $name already running (pid $(cat "$RUN/$name.pid"))" >&2; return; fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "[pipeline] port $port ($name metrics) is taken by another process; set $4 to a free port" >&2; exit 1
  fi
  nohup setsid "$PGTRAIL" "$cmd" >> "$LOG/$name.log" 2>&1 < /dev/null &
  echo $! > "$RUN/$name.pid"
  for _ in $(seq 1 60); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "[pipeline] $name running (pid $(cat "$RUN/$name.pid"), metrics http://127.0.0.1:$port/metrics)" >&2; return
    fi
    running "$name" || { tail -5 "$LOG/$name.log" >&2; echo "[pipeline] $name exited; see $LOG/$name.log" >&2; exit 1; }
    sleep 0.5
  done
  echo "[pipeline] $name did not open its metrics port; see $LOG/$name.log" >&2; exit 1
}

stop_one() {
  local name=$1
  if running "$name"; then
    local pid; pid=$(cat "$RUN/$name.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
    echo "[pipeline] $name stopped" >&2
  fi
  rm -f "$RUN/$name.pid"
}

case "${1:-}" in
  start) start_one consumer consume "${PGTRAIL_CONSUMER_METRICS_PORT:-9641}" PGTRAIL_CONSUMER_METRICS_PORT
         start_one sink sink "${PGTRAIL_SINK_METRICS_PORT:-9642}" PGTRAIL_SINK_METRICS_PORT ;;
  stop) stop_one consumer; stop_one sink ;;
  status) for n in consumer sink; do
            if running "$n"; then echo "$n  up    pid $(cat "$RUN/$n.pid")"; else echo "$n  down"; fi
          done ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
