"""The tracking wing: runs mirrored where teams already look (MLflow).

`run_record` turns a run's report into MLflow's terms (parameters, metrics,
tags, files); `mlflow_mirror` sends them, keeps the model registry in step
with what TF Serving serves, and mirrors a store's history by command.
"""
