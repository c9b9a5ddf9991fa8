#!/usr/bin/env bash
# An MLflow tracking server (tracking + model registry) on loopback, for local
# runs and the tests: what the pipeline mirrors its runs into (docs/mlflow.md).
#
#   scripts/mlflow.sh install   the server's venv (.venv-mlflow; make setup runs
#                               this: start needs no network)
#   scripts/mlflow.sh start     start the server, write the env file
#   scripts/mlflow.sh status    whether it runs, on which port
#   scripts/mlflow.sh stop      stop it (runs and models are kept)
#   source build/mlflow/env.sh  CFPB_MLFLOW_TRACKING_URI for the runners
#
# Backend store: $CFPB_MLFLOW_BACKEND_URI (an SQLAlchemy URI: PostgreSQL from
# scripts/dev_services.sh for a team server), default SQLite in the folder.
# Artifacts: $CFPB_MLFLOW_ARTIFACTS (gs://BUCKET/mlflow with the object store's
# env sourced first), default the folder's artifacts/. Folder, log and port:
# $CFPB_MLFLOW_DIR (default build/mlflow, git-ignored).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=$(realpath -m "${CFPB_MLFLOW_DIR:-$repo/build/mlflow}")
venv=${CFPB_MLFLOW_TOOLS:-$repo/.venv-mlflow}
backend=${CFPB_MLFLOW_BACKEND_URI:-sqlite:///$dir/mlflow.db}
artifacts=${CFPB_MLFLOW_ARTIFACTS:-$dir/artifacts}

# shellcheck source=tool_venv.sh
source "$repo/scripts/tool_venv.sh"

usage() { sed -n '2,17s/^# \{0,1\}//p' "$0"; }
die() { echo "mlflow: $*" >&2; exit 1; }

port() {
  [[ -s $dir/server.port ]] ||
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' >"$dir/server.port"
  cat "$dir/server.port"
}

running() { [[ -s $dir/server.pid ]] && kill -0 "$(cat "$dir/server.pid")" 2>/dev/null; }

install_tools() { sync_tool_venv "$repo" "$venv" "$repo/requirements-mlflow.lock"; }

wait_ready() {
  local url=http://127.0.0.1:$(port)/health
  for _ in $(seq 600); do
    curl -sf --noproxy '*' "$url" >/dev/null 2>&1 && return 0
    running || die "the server exited; see $dir/server.log"
    sleep 0.2
  done
  die "the server did not answer within 120 s; see $dir/server.log"
}

start() {
  mkdir -p "$dir"
  [[ -x $venv/bin/mlflow ]] || die "the server is not installed: scripts/mlflow.sh install"
  [[ $artifacts == *://* ]] || mkdir -p "$artifacts"
  local server_port
  server_port=$(port)
  if ! running; then
    # Telemetry off: MLflow 3 reports usage to mlflow-telemetry.io by default,
    # and nothing here may reach beyond this machine. One worker: a laptop's
    # server; --workers for a team's.
    MLFLOW_DISABLE_TELEMETRY=true setsid "$venv/bin/mlflow" server \
      --host 127.0.0.1 --port "$server_port" --workers "${CFPB_MLFLOW_WORKERS:-1}" \
      --backend-store-uri "$backend" --serve-artifacts --artifacts-destination "$artifacts" \
      >"$dir/server.log" 2>&1 </dev/null &
    echo $! >"$dir/server.pid"
  fi
  wait_ready
  cat >"$dir/env.sh" <<EOF
# Written by scripts/mlflow.sh: the runners mirror every run into this server.
export CFPB_MLFLOW_TRACKING_URI=http://127.0.0.1:$server_port
EOF
  echo "mlflow: http://127.0.0.1:$server_port (backend ${backend%%://*}, artifacts $artifacts)"
  echo "  source $dir/env.sh"
}

stop() {
  if running; then
    # setsid made the server a group leader: its workers go with it.
    kill -- "-$(cat "$dir/server.pid")" 2>/dev/null || true
  fi
  rm -f "$dir/server.pid"
}

status() {
  if running; then echo "server: running (pid $(cat "$dir/server.pid"), port $(port))"
  else echo "server: stopped"; fi
}

case ${1:-} in
  install) install_tools ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac
