# Sourced by the scripts whose tools live in a venv of their own (pins that
# clash with the pipeline's .venv): creates it with .venv's interpreter and
# syncs it with its lock file, using .venv's uv.
#
#   sync_tool_venv REPO VENV LOCK
sync_tool_venv() {
  local repo=$1 venv=$2 lock=$3 python
  python=$("$repo/.venv/bin/python" -c 'import sys; print(sys._base_executable)')
  [[ -x $venv/bin/python ]] || "$repo/.venv/bin/uv" venv -q --python "$python" "$venv"
  echo "==> syncing $venv with $(basename "$lock")"
  VIRTUAL_ENV=$venv "$repo/.venv/bin/uv" pip sync -q "$lock"
}
