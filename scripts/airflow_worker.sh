#!/usr/bin/env bash
# Airflow Celery workers, each in a folder of its own, as if on a machine of its own.
#
#   scripts/airflow_worker.sh start DIR [NAME]   deploy the DAG into DIR/dags, then
#                                                run a worker there (foreground)
#   scripts/airflow_worker.sh deploy DIR         only write DIR/dags (e.g. the folder
#                                                the Compose file mounts)
#
# What a worker machine holds, and nothing else: DIR is its working directory
# and AIRFLOW_HOME (airflow.cfg, task logs), DIR/dags its DAGs folder with the
# DAG file and the compiled pipeline copied in (what a deploy syncs to each
# worker; recompile, redeploy and restart the workers after changing the
# pipeline), the project's venv its image. It shares only the servers and the
# pipeline's locations with the scheduler and the other workers, so the
# environment must give (source build/services/env.sh and
# scripts/airflow_env.sh, or production's equivalents):
#   AIRFLOW__DATABASE__SQL_ALCHEMY_CONN   Airflow's PostgreSQL
#   AIRFLOW__CELERY__BROKER_URL           the broker (Redis)
#   AIRFLOW__CELERY__RESULT_BACKEND       where task states go (PostgreSQL)
#   CFPB_*                                the pipeline's settings, the same as
#     the compile's, with MLMD on MySQL and data, pipeline root and serving
#     directory where every worker reaches them (gs://, or a shared mount)
# NAME (default: DIR's name) names the worker to Celery. Each worker runs
# AIRFLOW__CELERY__WORKER_CONCURRENCY tasks at once (default here 1: one TFX
# component keeps a core busy and Transform takes GBs; Airflow's own default
# is 16). Stop it with Ctrl-C or SIGTERM: Celery finishes its running task.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
usage() { sed -n '2,27s/^# \{0,1\}//p' "$0"; }
die() { echo "airflow_worker: $*" >&2; exit 2; }

case ${1:-} in
  -h|--help|help) usage; exit 0 ;;
  start|deploy) [[ -n ${2:-} ]] || { usage >&2; exit 2; } ;;
  *) usage >&2; exit 2 ;;
esac
command=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)
name=${3:-$(basename "$dir")}

python=$repo/.venv/bin/python
# The compiled pipeline this environment's settings name (runners/airflow_runner.py).
compiled=$("$python" -c 'from runners.airflow_runner import compiled_path
from settings.configs import PipelineConfig
print(compiled_path(PipelineConfig.from_env()))')
[[ -s $compiled ]] || die "no compiled pipeline at $compiled: run python runners/airflow_runner.py first"

mkdir -p "$dir/dags"
cp "$repo/runners/airflow_dag.py" "$dir/dags/"
cp "$compiled" "$dir/dags/"
if [[ $command == deploy ]]; then echo "==> deployed the DAG into $dir/dags"; exit 0; fi

for needed in AIRFLOW__DATABASE__SQL_ALCHEMY_CONN AIRFLOW__CELERY__BROKER_URL AIRFLOW__CELERY__RESULT_BACKEND; do
  [[ -n ${!needed:-} ]] || die "$needed is not set: source build/services/env.sh (scripts/dev_services.sh start)"
done
[[ ${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN} != sqlite* ]] || die "Celery workers need Airflow on PostgreSQL, not SQLite"

export AIRFLOW_HOME=$dir
export AIRFLOW__CORE__DAGS_FOLDER=$dir/dags
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__EXECUTOR=CeleryExecutor
export AIRFLOW__CELERY__WORKER_CONCURRENCY=${AIRFLOW__CELERY__WORKER_CONCURRENCY:-1}
export CFPB_AIRFLOW_COMPILED=$dir/dags/$(basename "$compiled")
export PATH=$repo/.venv/bin:$PATH
cd "$dir"
echo "==> Celery worker $name in $dir (concurrency $AIRFLOW__CELERY__WORKER_CONCURRENCY)"
# --skip-serve-logs: Airflow's log server binds every interface with no
# setting to change it; task logs stay in $dir/logs.
exec airflow celery worker --celery-hostname "$name@%h" --skip-serve-logs
