# The image every Kubeflow task runs (`python -m runners.node_launcher`), and
# the request logger next to TF Serving (`python -m feedback.logging_proxy`): the
# project and only what its tasks import, pinned by requirements-task.lock (the
# tested versions from requirements.lock, without Airflow, the KFP SDK or the
# test tools). `python scripts/estimate_image_size.py` estimates its size.
#
#   docker build -t REGISTRY/cfpb-tfx-pipeline-task:TAG .
#   docker push REGISTRY/cfpb-tfx-pipeline-task:TAG
#
# Python 3.10 as TFX 1.16 requires.
FROM python:3.10-slim

ENV PYTHONUNBUFFERED=1 \
    # TFX 1.16 needs Keras 2 (tf-keras) instead of TF 2.16's Keras 3.
    TF_USE_LEGACY_KERAS=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY requirements-task.lock ./
# The lock is complete, so pip installs it as it is, without resolving.
RUN pip install --no-cache-dir --no-deps -r requirements-task.lock

COPY setup.py ./
# The product packages setup.py installs, and nothing else (no stand-ins,
# benchmarks or tests; tests/test_packaging.py checks both lists).
COPY settings ./settings
COPY models ./models
COPY data ./data
COPY serving ./serving
COPY components ./components
COPY pipeline ./pipeline
COPY feedback ./feedback
COPY reporting ./reporting
COPY tracking ./tracking
COPY runners ./runners
# Tasks run the installed package, not a copy of the sources: the sources are
# removed and tasks start in an empty folder, so nothing depends on the
# working directory (the curated schema and the bundled exports are package data).
RUN pip install --no-cache-dir --no-deps . && rm -rf /src
WORKDIR /pipeline
RUN python -c "import models.preprocessing, components.idempotent_pusher, runners.node_launcher, tfx" \
 && python -c "import os; from settings.configs import PipelineConfig; assert os.path.isfile(PipelineConfig().schema_path)"

# KFP sets each task's command (runners/kubeflow_runner.py); no ENTRYPOINT.
