#!/usr/bin/env bash
# MariaDB (ML Metadata), PostgreSQL (Airflow's metadata DB) and Redis (the
# Celery broker) on loopback, for local runs and the integration tests: the
# "team server" stack on one machine.
#
#   scripts/dev_services.sh start     install the Debian packages if missing,
#                                     initialize, start all three, write the env file
#   scripts/dev_services.sh status    what runs, on which ports
#   scripts/dev_services.sh stop      clean shutdown of all three (data is kept)
#   scripts/dev_services.sh destroy   stop, then delete all their data
#   source build/services/env.sh      point the runners, the notebook and
#                                     Airflow (LocalExecutor, or Celery workers) at them
#
# Data, logs, sockets and generated passwords live in $CFPB_SERVICES_DIR
# (default build/services, git-ignored). Ports are free ones picked at the
# first start and kept. Servers listen on 127.0.0.1 only.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Absolute: the servers chdir, and mariadb-install-db fails on a relative datadir.
dir=$(realpath -m "${CFPB_SERVICES_DIR:-$repo/build/services}")
mysql_db=mlmd
mysql_user=mlmd
pg_db=airflow
pg_user=airflow

usage() { sed -n '2,15s/^# \{0,1\}//p' "$0"; }

die() { echo "dev_services: $*" >&2; exit 1; }

pg_bin() {
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [[ -n $found ]] && echo "$found"
}

install_packages() {
  local missing=()
  command -v mariadbd >/dev/null || missing+=(mariadb-server)
  [[ -n $(pg_bin) ]] || missing+=(postgresql)
  command -v redis-server >/dev/null || missing+=(redis-server)
  ((${#missing[@]})) || return 0
  command -v apt-get >/dev/null || die "missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]})"
  ((EUID == 0)) || die "missing ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}"
  echo "==> installing ${missing[*]} (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  # Fresh machines have no package lists yet.
  # Wait for dpkg's lock instead of failing (another install may be running).
  local apt=(apt-get -o DPkg::Lock::Timeout=600)
  "${apt[@]}" install -y -q "${missing[@]}" >"$dir/apt.log" 2>&1 ||
    { "${apt[@]}" update -q >>"$dir/apt.log" 2>&1 && "${apt[@]}" install -y -q "${missing[@]}" >>"$dir/apt.log" 2>&1; } ||
    die "apt-get install ${missing[*]} failed, see $dir/apt.log"
}

# MariaDB and PostgreSQL refuse to run as root: as root, all three run as
# the users the Debian packages create, owning their data folders.
as_user() {
  local user=$1; shift
  if ((EUID == 0)); then runuser -u "$user" -- "$@"; else "$@"; fi
}

own() {
  if ((EUID == 0)); then chown -R "$1:$1" "$2"; fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

secret() {
  [[ -s $1 ]] || (umask 077; python3 -c 'import secrets; print(secrets.token_urlsafe(18))' >"$1")
}

port_of() {
  [[ -s $dir/$1.port ]] || free_port >"$dir/$1.port"
  cat "$dir/$1.port"
}

# Where the servers' own files go (data, sockets, pid, server logs): $dir,
# unless the servers run as mysql/postgres (as root) and cannot enter $dir
# because a parent folder is private (a clone under /root or in `mktemp -d`).
# Then they go to a folder of their own under /var/lib, recorded in
# $dir/server_dir so that stop, status and destroy find it.
external_root=/var/lib/cfpb-dev-services
srv=$dir
[[ -s $dir/server_dir ]] && srv=$(cat "$dir/server_dir")

choose_server_dir() {
  [[ -s $dir/server_dir ]] && return 0
  if ((EUID == 0)) && ! { runuser -u mysql -- test -x "$dir" && runuser -u postgres -- test -x "$dir" &&
    runuser -u redis -- test -x "$dir"; } 2>/dev/null; then
    srv=$external_root/$(printf %s "$dir" | sha256sum | cut -c1-16)
    mkdir -p "$srv"; chmod 755 "$external_root" "$srv"
    echo "==> $dir is not reachable by the mysql/postgres/redis users: their files go to $srv"
  fi
  echo "$srv" >"$dir/server_dir"
}

# mariadbd writes its pid and log after dropping to the mysql user: both go
# in a folder that user owns.
mysql_pid=mariadb-run/mariadbd.pid
mysql_running() { [[ -s $srv/$mysql_pid ]] && kill -0 "$(cat "$srv/$mysql_pid")" 2>/dev/null; }
redis_running() { [[ -s $srv/redis-run/redis.pid ]] && kill -0 "$(cat "$srv/redis-run/redis.pid")" 2>/dev/null; }
redis_ping() {
  REDISCLI_AUTH=$(cat "$dir/redis_password") redis-cli --no-auth-warning -h 127.0.0.1 \
    -p "$(cat "$dir/redis.port")" ping 2>/dev/null | grep -q PONG
}
pg_running() { [[ -d $srv/postgres ]] && as_user postgres "$(pg_bin)/pg_ctl" -D "$srv/postgres" status >/dev/null 2>&1; }

start_mariadb() {
  local port; port=$(port_of mariadb)
  mkdir -p "$srv/mariadb-run"
  own mysql "$srv/mariadb-run"
  if [[ ! -d $srv/mariadb/mysql ]]; then
    echo "==> initializing MariaDB in $srv/mariadb"
    mkdir -p "$srv/mariadb"; own mysql "$srv/mariadb"
    mariadb-install-db --no-defaults --datadir="$srv/mariadb" --user=mysql \
      --skip-test-db --auth-root-authentication-method=socket >"$dir/mariadb-init.log" 2>&1 ||
      die "mariadb-install-db failed, see $dir/mariadb-init.log"
  fi
  if ! mysql_running; then
    echo "==> starting MariaDB on 127.0.0.1:$port"
    # --user is honoured only when started as root.
    mariadbd --no-defaults --datadir="$srv/mariadb" --user=mysql \
      --bind-address=127.0.0.1 --port="$port" --socket="$srv/mariadb-run/mysqld.sock" \
      --pid-file="$srv/$mysql_pid" --log-error="$srv/mariadb-run/mariadb.log" \
      --skip-name-resolve >/dev/null 2>&1 &
    for _ in $(seq 60); do
      mariadb-admin --no-defaults --socket="$srv/mariadb-run/mysqld.sock" -uroot ping >/dev/null 2>&1 && break
      sleep 1
    done
    mariadb-admin --no-defaults --socket="$srv/mariadb-run/mysqld.sock" -uroot ping >/dev/null 2>&1 ||
      die "MariaDB did not start, see $srv/mariadb-run/mariadb.log"
  fi
  # ML Metadata creates its database on first use; the user may create any
  # database named mlmd* (the tests use one per store).
  local password; password=$(cat "$dir/mysql_password")
  mariadb --no-defaults --socket="$srv/mariadb-run/mysqld.sock" -uroot <<SQL
CREATE DATABASE IF NOT EXISTS $mysql_db;
CREATE USER IF NOT EXISTS '$mysql_user'@'127.0.0.1' IDENTIFIED BY '$password';
CREATE USER IF NOT EXISTS '$mysql_user'@'localhost' IDENTIFIED BY '$password';
GRANT ALL ON \`mlmd%\`.* TO '$mysql_user'@'127.0.0.1';
GRANT ALL ON \`mlmd%\`.* TO '$mysql_user'@'localhost';
SQL
}

start_postgres() {
  local port bin; port=$(port_of postgres); bin=$(pg_bin)
  mkdir -p "$srv/postgres-run"; own postgres "$srv/postgres-run"
  if [[ ! -s $srv/postgres/PG_VERSION ]]; then
    echo "==> initializing PostgreSQL in $srv/postgres"
    mkdir -p "$srv/postgres"; own postgres "$srv/postgres"
    cp "$dir/postgres_password" "$srv/postgres-run/pwfile"; own postgres "$srv/postgres-run"
    as_user postgres "$bin/initdb" -D "$srv/postgres" -U "$pg_user" --pwfile="$srv/postgres-run/pwfile" \
      --auth-host=scram-sha-256 --auth-local=peer >"$dir/postgres-init.log" 2>&1 ||
      die "initdb failed, see $dir/postgres-init.log"
    rm -f "$srv/postgres-run/pwfile"
  fi
  if ! pg_running; then
    echo "==> starting PostgreSQL on 127.0.0.1:$port"
    touch "$srv/postgres.log"; own postgres "$srv/postgres.log"
    as_user postgres "$bin/pg_ctl" -D "$srv/postgres" -l "$srv/postgres.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $srv/postgres-run" start >/dev/null ||
      die "PostgreSQL did not start, see $srv/postgres.log"
  fi
  PGPASSWORD=$(cat "$dir/postgres_password") psql -h 127.0.0.1 -p "$port" -U "$pg_user" -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$pg_db'" | grep -q 1 ||
    PGPASSWORD=$(cat "$dir/postgres_password") psql -h 127.0.0.1 -p "$port" -U "$pg_user" -d postgres -qc \
      "CREATE DATABASE $pg_db"
}

start_redis() {
  local port; port=$(port_of redis)
  mkdir -p "$srv/redis" "$srv/redis-run"
  # The password in a file only the server reads: an argument would show in ps.
  (umask 077; cat >"$srv/redis-run/redis.conf") <<EOF
bind 127.0.0.1
port $port
protected-mode yes
requirepass $(cat "$dir/redis_password")
dir $srv/redis
# Queued Celery tasks survive a broker restart: every write is appended to a
# log fsync'd each second, replayed at start.
appendonly yes
appendfsync everysec
daemonize yes
pidfile $srv/redis-run/redis.pid
logfile $srv/redis-run/redis.log
EOF
  own redis "$srv/redis"; own redis "$srv/redis-run"
  if ! redis_running; then
    echo "==> starting Redis on 127.0.0.1:$port"
    as_user redis redis-server "$srv/redis-run/redis.conf" ||
      die "Redis did not start, see $srv/redis-run/redis.log"
    for _ in $(seq 30); do redis_ping && break; sleep 0.5; done
    redis_ping || die "Redis does not answer, see $srv/redis-run/redis.log"
  fi
}

write_env() {
  local pg_password pg; pg_password=$(cat "$dir/postgres_password")
  pg=$pg_user:$pg_password@127.0.0.1:$(cat "$dir/postgres.port")/$pg_db
  (umask 077; cat >"$dir/env.sh") <<EOF
# Written by scripts/dev_services.sh: source it to use the loopback servers.
export CFPB_MYSQL_HOST=127.0.0.1
export CFPB_MYSQL_PORT=$(cat "$dir/mariadb.port")
export CFPB_MYSQL_DATABASE=$mysql_db
export CFPB_MYSQL_USER=$mysql_user
export CFPB_MYSQL_PASSWORD_FILE=$dir/mysql_password
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg2://$pg
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
# For AIRFLOW__CORE__EXECUTOR=CeleryExecutor (scripts/airflow_worker.sh):
# tasks queue in Redis, their states are kept in Airflow's PostgreSQL.
export AIRFLOW__CELERY__BROKER_URL=redis://:$(cat "$dir/redis_password")@127.0.0.1:$(cat "$dir/redis.port")/0
export AIRFLOW__CELERY__RESULT_BACKEND=db+postgresql://$pg
EOF
}

start() {
  mkdir -p "$dir"
  install_packages
  choose_server_dir
  secret "$dir/mysql_password"
  secret "$dir/postgres_password"
  secret "$dir/redis_password"
  start_mariadb
  start_postgres
  start_redis
  write_env
  status
  echo "==> source $dir/env.sh to use them"
}

stop() {
  if mysql_running; then
    echo "==> stopping MariaDB"
    local pid; pid=$(cat "$srv/$mysql_pid")
    kill "$pid"
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null && die "MariaDB (pid $pid) did not stop within 60 s"
  fi
  if pg_running; then
    echo "==> stopping PostgreSQL"
    as_user postgres "$(pg_bin)/pg_ctl" -D "$srv/postgres" -m fast -w stop >/dev/null
  fi
  if redis_running; then
    echo "==> stopping Redis"
    local pid; pid=$(cat "$srv/redis-run/redis.pid")
    kill "$pid"
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null && die "Redis (pid $pid) did not stop within 60 s"
  fi
  return 0
}

status() {
  local code=0
  if mysql_running; then echo "mariadb     running  127.0.0.1:$(cat "$dir/mariadb.port")  database $mysql_db, user $mysql_user"
  else echo "mariadb     stopped"; code=3; fi
  if pg_running; then echo "postgresql  running  127.0.0.1:$(cat "$dir/postgres.port")  database $pg_db, user $pg_user"
  else echo "postgresql  stopped"; code=3; fi
  if redis_running; then echo "redis       running  127.0.0.1:$(cat "$dir/redis.port")  Celery broker"
  else echo "redis       stopped"; code=3; fi
  echo "data        $dir"
  [[ $srv == "$dir" ]] || echo "server files $srv"
  return $code
}

destroy() {
  stop
  # Only a folder this script made under /var/lib, never an arbitrary path.
  if [[ $srv != "$dir" && $srv == "$external_root"/* ]]; then rm -rf "$srv"; fi
  rm -rf "$dir"
  echo "==> deleted $dir"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  destroy) destroy ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
