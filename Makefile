# The two commands that matter on a fresh machine:
#   make run    set everything up, then run the pipeline on the bundled data
#   make test   set everything up, then run the test suite (what CI runs)
PYTHON := .venv/bin/python

.PHONY: setup run test lock lock-task
setup:
	bash scripts/setup.sh

run: setup
	$(PYTHON) runners/beam_runner.py $(ARGS)

test: setup
	$(PYTHON) -m pytest $(ARGS)

# Re-resolve requirements.lock after editing requirements.in.
lock: setup
	.venv/bin/uv pip compile --python-version 3.10 --python-platform x86_64-unknown-linux-gnu \
		requirements.in -o requirements.lock

# The Kubeflow task image's lock: requirements-task.in within requirements.lock's pins.
lock-task: setup
	.venv/bin/uv pip compile --python-version 3.10 --python-platform x86_64-unknown-linux-gnu \
		requirements-task.in -c requirements.lock -o requirements-task.lock
