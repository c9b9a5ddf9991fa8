#!/usr/bin/env bash
# A Flink cluster on this machine for the pipeline's Beam work: a JobManager,
# two TaskManagers (separate JVMs), Beam's Flink job server, and Python SDK
# workers that the TaskManagers start as processes (Beam's PROCESS
# environment, no Docker) in the project's venv.
#
#   scripts/flink.sh install   fetch everything into .flink/ (make setup runs it;
#                              start needs no network): Flink from PyPI, Beam's
#                              job server from Maven, Beam's SDK boot with `go`
#   scripts/flink.sh start     start the cluster, write the env file
#   scripts/flink.sh status    what runs, on which ports, how many TaskManagers
#   scripts/flink.sh stop      stop everything this script started
#   source build/flink/env.sh  turn the pipeline's Beam work to this cluster
#                              (CFPB_BEAM_RUNNER=flink and its endpoint)
#
# Logs, ports and pids live in $CFPB_FLINK_DIR (default build/flink). Flink's
# web UI is http://127.0.0.1:<rest port> (`status` prints it). For a pipeline
# root in the object store, source build/object_store/env.sh before `start`:
# the SDK workers inherit the TaskManagers' environment, as on a real cluster
# whose workers hold their own credentials.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${CFPB_FLINK_DIR:-$repo/build/flink}
tools=${CFPB_FLINK_TOOLS:-$repo/.flink}
# Beam 2.59's Flink runner is served by Maven Central for Flink 1.16 only
# (scripts/flink/pom.xml); the newest 1.16 release matches it.
flink_version=1.16.3
beam_version=$(sed -n 's/^apache-beam==//p' "$repo/requirements.lock")
flink_home=$tools/flink-$flink_version
task_managers=2

usage() { sed -n '2,20s/^# \{0,1\}//p' "$0"; }
die() { echo "flink: $*" >&2; exit 1; }

# Flink 1.16 predates its Java 17 support: its RPC and serializers reflect into
# the JDK (Flink 1.17+ ships these flags itself). The job server needs them too.
java_opts="--add-exports=java.base/sun.net.util=ALL-UNNAMED \
--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED \
--add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED"
for package in java.lang java.util java.lang.reflect java.io java.nio sun.nio.ch java.net \
  java.util.concurrent java.util.concurrent.atomic java.time java.text java.math; do
  java_opts+=" --add-opens=java.base/$package=ALL-UNNAMED"
done

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port() {
  [[ -s $dir/$1.port ]] || free_port >"$dir/$1.port"
  cat "$dir/$1.port"
}

installed() {
  [[ -x $flink_home/bin/jobmanager.sh && -e $tools/job-server/.complete && -x $tools/bin/boot ]]
}

install_flink() {
  [[ -x $flink_home/bin/jobmanager.sh ]] && return 0
  command -v java >/dev/null || die "Flink needs Java (17 here): apt-get install openjdk-17-jre-headless"
  echo "==> fetching Flink $flink_version (the apache-flink sdists from PyPI: its jars and scripts)"
  local tmp
  tmp=$(mktemp -d)
  # Downloaded, never installed: apache-flink pins an older Beam than the pipeline's.
  "$repo/.venv/bin/python" -m pip download -q --no-deps --no-build-isolation --no-binary :all: \
    -d "$tmp" "apache-flink==$flink_version" "apache-flink-libraries==$flink_version"
  tar -xzf "$tmp/apache-flink-$flink_version.tar.gz" -C "$tmp"
  tar -xzf "$tmp/apache-flink-libraries-$flink_version.tar.gz" -C "$tmp"
  mkdir -p "$tmp/home"
  cp -r "$tmp/apache-flink-$flink_version/deps/"{bin,conf} "$tmp/home/"
  cp -r "$tmp/apache-flink-libraries-$flink_version/deps/"{lib,opt,plugins} "$tmp/home/"
  cp "$tmp/apache-flink-libraries-$flink_version/deps/bin/"*.jar "$tmp/home/bin/"
  chmod +x "$tmp/home/bin/"*.sh
  mkdir -p "$tools"
  mv "$tmp/home" "$flink_home"
  rm -rf "$tmp"
}

install_job_server() {
  [[ -e $tools/job-server/.complete ]] && return 0
  command -v mvn >/dev/null || die "the job server is fetched with Maven: apt-get install maven"
  echo "==> fetching Beam $beam_version's Flink job server (Maven Central)"
  rm -rf "$tools/job-server"
  mkdir -p "$tools"
  mvn -B -f "$repo/scripts/flink/pom.xml" -Dbeam.version="$beam_version" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tools/job-server" \
    >"$tools/mvn.log" 2>&1 || { tail -30 "$tools/mvn.log" >&2; die "mvn failed: $tools/mvn.log"; }
  touch "$tools/job-server/.complete"
}

install_boot() {
  [[ -x $tools/bin/boot ]] && return 0
  command -v go >/dev/null || die "Beam's SDK boot program is built with Go: install Go 1.22+"
  echo "==> building Beam $beam_version's Python SDK boot program (Go module proxy)"
  # The program Beam's Python SDK container runs as its entrypoint: it fetches
  # the pipeline options and staged files from the runner, then starts the SDK
  # harness. The TaskManagers run it directly (PROCESS environment).
  mkdir -p "$tools/bin"
  GOBIN="$tools/bin" GOFLAGS=-mod=mod go install \
    "github.com/apache/beam/sdks/v2/python/container@v$beam_version"
  mv "$tools/bin/container" "$tools/bin/boot"
}

install() {
  install_flink
  install_job_server
  install_boot
  echo "==> Flink tools ready in $tools"
}

# TaskManagers whose process is alive (Flink's pid file lists every one started).
live_task_managers() {
  local pid count=0
  for pid in $(cat "$dir"/flink-*-taskexecutor.pid 2>/dev/null); do
    if kill -0 "$pid" 2>/dev/null; then count=$((count + 1)); fi
  done
  echo "$count"
}

running() { [[ -s $dir/$1.pid ]] && kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null; }

write_conf() {
  mkdir -p "$dir/conf" "$dir/log"
  cp "$flink_home/conf/"log4j*.properties "$dir/conf/"
  cat >"$dir/conf/flink-conf.yaml" <<EOF
# Written by scripts/flink.sh. Everything binds to loopback.
jobmanager.rpc.address: 127.0.0.1
jobmanager.bind-host: 127.0.0.1
jobmanager.rpc.port: $(port jobmanager)
rest.address: 127.0.0.1
rest.bind-address: 127.0.0.1
rest.port: $(port rest)
taskmanager.host: 127.0.0.1
taskmanager.bind-host: 127.0.0.1
# Two TaskManagers of one slot each: Beam's parallelism 2 on two JVMs, one per core.
taskmanager.numberOfTaskSlots: 1
parallelism.default: $task_managers
# The JVMs stay small: the Beam work runs in the Python SDK workers (~1 GB each
# with TensorFlow), which the TaskManagers start outside their heap.
jobmanager.memory.process.size: 1024m
taskmanager.memory.process.size: 3072m
# Beam's Fn API data plane (its vendored gRPC/Netty) holds elements on the
# TaskManager's heap and in direct buffers, which Flink counts as task
# off-heap memory, 0 by default: at 1,000,000 rows Transform's analyze stage
# failed with "OutOfMemoryError: Direct buffer memory", and with 512 MB of it
# out of a 2.5 GB process CsvExampleGen's split ran out of task heap (205 MB
# left). Managed memory (Flink's sorts, which spill to disk) is kept small so
# that ~1.2 GB remain task heap (docs/flink.md).
taskmanager.memory.task.off-heap.size: 512m
taskmanager.memory.managed.size: 256m
# An out-of-memory error in one of Beam's gRPC threads is uncaught: the
# TaskManager lived on and the job hung with its task RUNNING (15 minutes
# until killed). Exit instead: the job fails and the run stops with one line.
taskmanager.jvm-exit-on-oom: true
cluster.uncaught-exception-handling: FAIL
# Beam's batch translation runs many exchanges at once (StatisticsGen's
# branches). Flink's sort-merge shuffle takes 512 network buffers (16 MB) per
# result partition and ran out; at parallelism 2 the hash-based blocking
# shuffle (a file per consumer) needs a few buffers per channel.
taskmanager.network.sort-shuffle.min-parallelism: 1000000
taskmanager.memory.network.min: 256m
taskmanager.memory.network.max: 256m
jobmanager.execution.failover-strategy: region
# A TaskManager that dies is noticed in seconds, not Flink's default 50.
heartbeat.interval: 2000
heartbeat.timeout: 10000
# Beam's runner classes come from the cluster's own classpath (write_lib), not
# from each job's jars: only then does Beam keep a TaskManager's SDK workers
# between a job's stages (FlinkExecutableStageContextFactory releases them at
# once when its class was loaded by a job's classloader), instead of starting
# a Python worker, which imports TensorFlow, for every stage.
classloader.resolve-order: parent-first
env.pid.dir: $dir
env.log.dir: $dir/log
env.java.opts: $java_opts
EOF
}

# Flink's lib/ plus Beam's runner and its dependencies (the job server's jars
# but Flink's own, which Flink's lib/ has), as links: the cluster's classpath.
write_lib() {
  rm -rf "$dir/lib"
  mkdir -p "$dir/lib"
  ln -s "$flink_home/lib/"*.jar "$dir/lib/"
  local jar
  for jar in "$tools/job-server/"*.jar; do
    [[ $(basename "$jar") == flink-* ]] || ln -s "$jar" "$dir/lib/"
  done
}

wait_ready() {
  local rest=http://127.0.0.1:$(port rest) count
  for _ in $(seq 120); do
    count=$(curl -sf --noproxy '*' "$rest/taskmanagers" 2>/dev/null |
      python3 -c 'import json, sys; print(len(json.load(sys.stdin)["taskmanagers"]))' 2>/dev/null || echo 0)
    if [[ $count -ge $task_managers ]] && (exec 3<>"/dev/tcp/127.0.0.1/$(port job)") 2>/dev/null; then
      return 0
    fi
    sleep 0.5
  done
  die "the cluster did not come up within 60 s ($count of $task_managers TaskManagers); see $dir/log/"
}

write_env() {
  cat >"$dir/env.sh" <<EOF
# Written by scripts/flink.sh: the pipeline's Beam work on this Flink cluster.
export CFPB_BEAM_RUNNER=flink
export CFPB_BEAM_JOB_ENDPOINT=127.0.0.1:$(port job)
export CFPB_BEAM_PARALLELISM=$task_managers
export CFPB_BEAM_SDK_BOOT=$tools/bin/boot
EOF
}

start() {
  installed || die "the tools are not installed: scripts/flink.sh install"
  mkdir -p "$dir"
  write_conf
  write_lib
  export FLINK_CONF_DIR=$dir/conf FLINK_LOG_DIR=$dir/log FLINK_LIB_DIR=$dir/lib
  # What the TaskManagers' SDK workers run: the project's venv first on PATH
  # (the boot program starts `python`), in that interpreter's environment
  # rather than a fresh venv per worker (the worker image has the pipeline).
  export PATH=$repo/.venv/bin:$PATH RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT=1
  if ! curl -sf --noproxy '*' "http://127.0.0.1:$(port rest)/config" >/dev/null 2>&1; then
    "$flink_home/bin/jobmanager.sh" start >/dev/null
  fi
  # Up to two live TaskManagers: `start` also replaces one that died.
  local i
  for ((i = $(live_task_managers); i < task_managers; i++)); do
    "$flink_home/bin/taskmanager.sh" start >/dev/null
  done
  if ! running job-server; then
    # shellcheck disable=SC2086  # java_opts is a list of flags
    setsid java $java_opts -cp "$tools/job-server/*" \
      org.apache.beam.runners.flink.FlinkJobServerDriver \
      --flink-master="127.0.0.1:$(port rest)" --flink-conf-dir="$dir/conf" \
      --job-host=127.0.0.1 --job-port="$(port job)" --artifact-port="$(port artifact)" \
      --expansion-port=0 --artifacts-dir="$dir/artifacts" \
      >"$dir/log/job-server.log" 2>&1 </dev/null &
    echo $! >"$dir/job-server.pid"
  fi
  wait_ready
  write_env
  status
  echo "  source $dir/env.sh"
}

status() {
  [[ -s $dir/rest.port ]] || { echo "flink: not running (never started in $dir)"; return 1; }
  local rest=http://127.0.0.1:$(port rest) count
  count=$(curl -sf --noproxy '*' "$rest/taskmanagers" 2>/dev/null |
    python3 -c 'import json, sys; print(len(json.load(sys.stdin)["taskmanagers"]))' 2>/dev/null) ||
    { echo "flink: not running (no JobManager at 127.0.0.1:$(port rest))"; return 1; }
  echo "flink: JobManager web UI $rest, $count TaskManager(s)"
  if running job-server; then
    echo "  Beam job server 127.0.0.1:$(port job) (artifacts 127.0.0.1:$(port artifact))"
  else
    echo "  Beam job server: not running"
  fi
}

stop() {
  export FLINK_CONF_DIR=$dir/conf FLINK_LOG_DIR=$dir/log FLINK_LIB_DIR=$dir/lib
  if running job-server; then kill "$(cat "$dir/job-server.pid")" 2>/dev/null || true; fi
  rm -f "$dir/job-server.pid"
  if [[ -d $flink_home && -s $dir/conf/flink-conf.yaml ]]; then
    "$flink_home/bin/taskmanager.sh" stop-all >/dev/null 2>&1 || true
    "$flink_home/bin/jobmanager.sh" stop-all >/dev/null 2>&1 || true
  fi
  # SDK workers the TaskManagers left behind (their boot programs are ours).
  pkill -f "^$tools/bin/boot " 2>/dev/null || true
  echo "flink: stopped"
}

case ${1:-} in
  install) install ;;
  start) start ;;
  status) status ;;
  stop) stop ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac
