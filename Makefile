# The two commands that matter on a fresh machine:
#   make run    set everything up, then run the pipeline on the bundled data
#   make test   set everything up, lint, then run the whole test suite (what CI runs)
# While editing:
#   make test-fast   the tests that run no pipeline and need no servers (~2 min)
#   make lint        ruff (lint + format check), mypy and the layers (import-linter:
#                    ruff.toml, mypy.ini, .importlinter)
#   make format      let ruff format the tree and fix what it can
PYTHON := .venv/bin/python
FAST_TESTS := -m "not e2e and not integration"
# Two test processes (pytest-xdist), a test module or the server-backed tests
# per work unit (tests/work_units.py): the long scenarios wait on subprocesses
# and servers more than they compute. WORKERS=0 runs everything in one process.
WORKERS ?= 2
PARALLEL := $(if $(filter 0,$(WORKERS)),,-n $(WORKERS))

.PHONY: setup run test test-fast lint lint-only format lock lock-task notebook-html
setup:
	bash scripts/setup.sh

run: setup
	$(PYTHON) runners/beam_runner.py $(ARGS)

test: setup
	$(MAKE) --no-print-directory lint-only
	$(PYTHON) -m pytest $(PARALLEL) $(ARGS)

# The notebook executed and exported as one page that loads nothing from the
# network (notebooks/offline.html.j2), into build/notebook/.
notebook-html: setup
	.venv/bin/jupyter nbconvert --to html --execute --template lab \
	  --template-file notebooks/offline.html.j2 --output-dir build/notebook \
	  notebooks/interactive_pipeline.ipynb

test-fast: setup
	$(PYTHON) -m pytest $(PARALLEL) $(FAST_TESTS) $(ARGS)

lint: setup
	$(MAKE) --no-print-directory lint-only

lint-only:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/lint-imports

format: setup
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

# Re-resolve requirements.lock after editing requirements.in.
lock: setup
	.venv/bin/uv pip compile --python-version 3.10 --python-platform x86_64-unknown-linux-gnu \
		requirements.in --override requirements-overrides.txt -o requirements.lock

# The Kubeflow task image's lock: requirements-task.in within requirements.lock's pins.
lock-task: setup
	.venv/bin/uv pip compile --python-version 3.10 --python-platform x86_64-unknown-linux-gnu \
		requirements-task.in -c requirements.lock --override requirements-overrides.txt -o requirements-task.lock
