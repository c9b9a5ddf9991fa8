# The image every Kubeflow task runs: the project and its locked dependencies,
# so executors in the cluster import the same code as local runs
# (`models.preprocessing.preprocessing_fn`, `components.idempotent_pusher.Executor`).
#
#   docker build -t REGISTRY/cfpb-tfx-pipeline:TAG .
#   docker push REGISTRY/cfpb-tfx-pipeline:TAG
#
# Python 3.10 as TFX 1.16 requires; the same requirements.lock as `make setup`
# rather than the tensorflow/tfx image, so the cluster runs exactly the tested set.
FROM python:3.10-slim

ENV PYTHONUNBUFFERED=1 \
    # TFX 1.16 needs Keras 2 (tf-keras) instead of TF 2.16's Keras 3.
    TF_USE_LEGACY_KERAS=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /pipeline
COPY requirements.lock ./
RUN pip install --no-cache-dir "uv==$(sed -n 's/^uv==//p' requirements.lock)" \
 && uv pip install --system --no-cache -r requirements.lock

COPY setup.py ./
COPY components ./components
COPY data ./data
COPY models ./models
COPY pipeline ./pipeline
COPY runners ./runners
COPY serving ./serving
RUN uv pip install --system --no-cache --no-deps . \
 && python -c "import models.preprocessing, components.idempotent_pusher, tfx"

# KFP sets each task's command (TFX's v2 container entrypoint); no ENTRYPOINT.
