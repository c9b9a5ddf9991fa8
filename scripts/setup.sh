#!/usr/bin/env bash
# Creates .venv (Python 3.10) with every dependency pinned by requirements.lock,
# installs this project into it (editable), and makes TF_USE_LEGACY_KERAS=1 hold
# in every interpreter the venv starts: TFX 1.16 needs Keras 2, and Beam workers,
# Airflow tasks and notebook kernels are separate processes that never see a
# variable exported by one shell.
#
# Override the interpreter with PYTHON=/path/to/python3.10, the venv with VENV=dir.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
UV_VERSION=$(sed -n 's/^uv==//p' requirements.lock)

find_python() {
  if [[ -n "${PYTHON:-}" ]]; then echo "$PYTHON"; return; fi
  for candidate in "env PYENV_VERSION=3.10.13 python3.10" python3.10; do
    if $candidate -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
      echo "$candidate"; return
    fi
  done
  echo "error: TFX 1.16 needs Python 3.10; none found (set PYTHON=/path/to/python3.10)" >&2
  exit 1
}

if [[ ! -x "$VENV/bin/python" ]]; then
  py=$(find_python)
  echo "==> creating $VENV with $($py --version)"
  # The stdlib venv module seeds pip, which TFX uses to install module files.
  $py -m venv "$VENV"
fi

if ! "$VENV/bin/uv" --version 2>/dev/null | grep -q " $UV_VERSION"; then
  echo "==> installing uv $UV_VERSION into $VENV (pip's resolver backtracks for >10 min on this set)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi

echo "==> syncing $VENV with requirements.lock"
# Bytecode compiled once here (~30 s for a fresh venv, ~3 s when in sync):
# otherwise every process that imports TensorFlow and TFX compiles them from
# source until one happens to write the .pyc files, and none does where
# PYTHONDONTWRITEBYTECODE is set (as on the CI machines).
"$VENV/bin/uv" pip sync --quiet --compile-bytecode --python "$VENV/bin/python" requirements.lock
"$VENV/bin/uv" pip install --quiet --python "$VENV/bin/python" --no-deps -e .

# The local object store's tools (their own venv: mitmproxy's pins clash with Airflow's).
scripts/object_store.sh install
# The MLflow server's (its own venv: a service of its own, as a team runs it).
scripts/mlflow.sh install
# The Flink cluster's: Flink, Beam's job server and SDK boot program (.flink/;
# ~420 MB, fetched once with pip, mvn and go; CFPB_SKIP_FLINK=1 skips them on a
# machine that will never start the cluster).
if [[ -z ${CFPB_SKIP_FLINK:-} ]]; then scripts/flink.sh install; fi

site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# A .pth line starting with `import` runs at every interpreter start-up, before
# any user code imports TensorFlow.
echo "import os; os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')" > "$site/cfpb_legacy_keras.pth"

"$VENV/bin/python" - <<'PY'
import os
from importlib.metadata import version
assert os.environ.get("TF_USE_LEGACY_KERAS") == "1", "the legacy-Keras .pth hook is not active"
print(f"==> ready: tfx {version('tfx')}, tensorflow {version('tensorflow')}, "
      f"tf-keras {version('tf-keras')}, apache-beam {version('apache-beam')}")
PY
