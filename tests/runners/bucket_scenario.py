"""The parity scenario on bucket roots, for tests/runners/test_kfp_parity.py.

Run inside a network namespace that has only loopback, so that a client that
looked for a real endpoint or the metadata server fails instead of sending
traffic off the machine:

    unshare -n sh -c 'ip link set lo up && python -m tests.runners.bucket_scenario ROOT'

It starts the local object store (scripts/object_store.sh) and the ML Metadata
gRPC stand-in (the cluster's metadata service), then plays SCENARIO with the
Beam runner and, at the same time, with the compiled Kubeflow YAML on the KFP
stand-in, whose tasks run in pods that share nothing but the store and the
metadata service (standins/kfp_pod.py). Every location is a gs:// URI.

What the test reads afterwards, under ROOT: `beam/metadata.sqlite` and
`cluster-metadata.sqlite` (the two ML Metadata stores), `beam/run<N>.log` and
`kfp/run<N>.log`, `kfp/tasks.json` (each task's state and peak memory),
`kfp/report.html`, `kfp/served.json` (the pushed model served from the bucket),
`histories.json` (both runners' run histories) and `objects.json` (every object in the bucket).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from tests.conftest import export_received_through, small_config
from tests.runners import loopback

BUCKET = "cfpb"
JAN_FEB_DAY = "2015-02-28"  # the first export's newest complaint: its span
WORSE_MODEL_STEPS = 1
# The last run: a private model (DP-SGD) over a privacy budget far below its
# epsilon (about 1.5 on this window): not blessed, whatever its AUC.
PRIVATE_OVER_BUDGET = {"private_training": True, "max_epsilon": 0.1}
# (exports present, training steps or None for the config's, other settings)
SCENARIO = (
    (1, None, {}),
    (2, None, {}),
    (2, WORSE_MODEL_STEPS, {}),
    (2, None, PRIVATE_OVER_BUDGET),
)
# What the stand-in image is called in the compiled YAML (never pulled here).
IMAGE = "cfpb-tfx-pipeline-task:stand-in"


def bucket_config(root: Path, prefix: str, **overrides):
    """A small config whose data, pipeline root and serving folder are in the bucket."""
    return small_config(
        root,
        data_root=f"gs://{BUCKET}/{prefix}/spans",
        pipeline_root=f"gs://{BUCKET}/{prefix}/pipeline_root",
        serving_model_dir=f"gs://{BUCKET}/{prefix}/serving_model",
        **overrides,
    )


def run_scenario(root: Path, prefix: str, run_once: Callable, **overrides):
    """Runs SCENARIO with `run_once(config, run_number, train_steps)`, the
    config with that run's settings; the exports arrive in a raw folder one
    by one, as from a download job."""
    from data import prepare

    raw = root / "raw"
    raw.mkdir(parents=True)
    config = bucket_config(root, prefix, raw_data_dir=str(raw), **overrides)
    # Two exports with final outcomes to train on (the 2014 one has none): a
    # January-February download of the 2015 complaints, then the whole 2015 export.
    (root / "exports").mkdir()
    exports = [
        export_received_through(JAN_FEB_DAY, root / "exports" / "complaints_2015-01_2015-02.csv"),
        prepare.RAW_DIR / "complaints_2015-01_2015-03.csv.gz",
    ]
    for number, (present, steps, settings) in enumerate(SCENARIO, start=1):
        for export in exports[:present]:
            if not (raw / export.name).exists():
                (raw / export.name).symlink_to(export)
        run_once(dataclasses.replace(config, **settings), number, steps or config.train_steps)
    return config


def beam_once(config, number: int, steps: int) -> None:
    """One run of the Beam runner as its own process (as a user runs it)."""
    root = Path(config.metadata_path).parent
    with open(root / f"run{number}.log", "w") as log:
        code = subprocess.run(
            [sys.executable, "-m", "runners.beam_runner", *config.as_flags()]
            + [f"--train-steps={steps}"],
            stdout=log,
            stderr=subprocess.STDOUT,
        ).returncode
    if code != 0:
        raise RuntimeError(f"Beam run {number} exited {code}: see {root}/run{number}.log")


def kfp_cluster(service_address: str, store: Path, image_python: Path):
    """The cluster every KFP task pod belongs to: the task image, the metadata
    service, and the local store's settings, CA and key."""
    from standins import kfp_pod

    return kfp_pod.Cluster(
        image_python=image_python,
        metadata_grpc=service_address,
        **kfp_pod.local_store_settings(store / "env.sh"),
    )


def kfp_scenario(root: Path, service, cluster) -> None:
    from data import prepare, storage
    from reporting import report
    from runners import kubeflow_runner
    from standins import kfp_backend

    compiled: dict[tuple, Path] = {}
    tasks = []

    def kfp_once(config, number, steps):
        # Compiled before any data (the span is chosen per run), once per
        # settings: a private pipeline is another compiled pipeline, as on a
        # cluster, where only the runtime parameters change per run.
        key = tuple(config.as_flags())
        if key not in compiled:
            compiled[key] = kubeflow_runner.compile_pipeline(
                dataclasses.replace(config, kubeflow_output=str(root / f"oss{len(compiled)}.yaml"))
            )
        # The cluster's ingestion job lays the exports out as spans in the bucket.
        prepare.prepare_all(
            storage.location(config.raw_data_dir),
            storage.location(config.data_root),
            config.max_rows_per_span,
        )
        with open(root / f"run{number}.log", "w") as log:
            result = kfp_backend.run(
                compiled[key],
                root / "kfp_root",
                cluster,
                {"train_args": json.dumps({"num_steps": steps})},
                echo=lambda line: print(line, file=log, flush=True),
            )
        tasks.append(
            {
                name: {
                    "state": task.state,
                    "peak_memory_gb": task.pod.peak_memory_gb if task.pod else None,
                    "log": str(task.log),
                }
                for name, task in result.tasks.items()
            }
        )
        (root / "tasks.json").write_text(json.dumps(tasks, indent=1))
        if result.failed or result.skipped_hooks:
            raise RuntimeError(
                f"KFP run {number}: failed at {result.failed}, hooks {result.skipped_hooks}:\n"
                + (result.tasks[result.failed].log.read_text()[-3000:] if result.failed else "")
            )

    config = run_scenario(
        root,
        "kfp",
        kfp_once,
        kubeflow_image=IMAGE,
    )
    # The run report reads a cluster's records too (the last run: the private model).
    cluster_config = dataclasses.replace(config, metadata_grpc=service.address)
    page = report.write(cluster_config, root / "reports")
    (root / "report.html").write_text(page.read_text())
    serve_from_bucket(root, config)


def serve_from_bucket(root: Path, kfp_config) -> None:
    """What a KFP task pushed, served from the bucket: models.config written
    from the bucket's versions (base_path in the bucket), the serving stand-in
    loading them through TF's GCS filesystem, one complaint asked over REST."""
    import contextlib
    import io

    from serving import client, model_config
    from standins import tf_serving

    config_path = root / "models.config"
    written = model_config.main(
        [f"--serving-model-dir={kfp_config.serving_model_dir}", f"--output={config_path}"]
    )
    server = tf_serving.StandIn(tf_serving.ServedModel.from_config(config_path), "127.0.0.1", 0, 0)
    answer = io.StringIO()
    try:
        with contextlib.redirect_stdout(answer):
            asked = client.main(
                ["--host", "127.0.0.1", "--rest-port", str(server.rest_port), "--json"]
                + ["--product", "Mortgage", "--issue", "Loan servicing, payments, escrow account"]
                + ["--state", "CA", "--zip-code", "94110"]
                + ["--company-response", "Closed with explanation", "--timely-response", "Yes"]
                + ["--date-received", "2015-03-02", "--date-sent-to-company", "2015-03-04"]
            )
    finally:
        server.stop()
    (root / "served.json").write_text(
        json.dumps(
            {
                "model_config_exit": written,
                "client_exit": asked,
                "models_config": config_path.read_text(),
                "answer": answer.getvalue(),
            }
        )
    )


def write_histories(root: Path) -> None:
    """Both runners' run histories, read here: they read the gate's reports
    in the bucket, which only this namespace reaches (histories.json)."""
    from tfx.orchestration import metadata

    from reporting import run_history
    from settings.configs import PipelineConfig

    histories = {}
    for side, path in (
        ("beam", root / "beam" / "metadata.sqlite"),
        ("kfp", root / "cluster-metadata.sqlite"),
    ):
        rows = run_history.history(
            metadata.sqlite_metadata_connection_config(str(path)), PipelineConfig().pipeline_name
        )
        histories[side] = [dataclasses.asdict(row) for row in rows]
    (root / "histories.json").write_text(json.dumps(histories, default=str))


def list_bucket() -> list[str]:
    from google.cloud import storage as gcs

    client = gcs.Client()  # the store's credentials (env.sh)
    return sorted(blob.name for blob in client.list_blobs(BUCKET))


def main(root: Path) -> int:
    from standins import mlmd_grpc_server, task_image

    # Built (or found) before the store's settings point every client at it.
    image_python = task_image.build()
    store = root / "store"
    with loopback.object_store(store, BUCKET) as store_env:
        os.environ.update(store_env)
        errors: list[BaseException] = []

        def beam_side():
            try:
                run_scenario(
                    root / "beam", "beam", beam_once, report_dir=f"gs://{BUCKET}/beam/reports"
                )
            except BaseException as error:  # re-raised below
                errors.append(error)

        beam = threading.Thread(target=beam_side)
        beam.start()
        try:
            with mlmd_grpc_server.sqlite_standin(str(root / "cluster-metadata.sqlite")) as service:
                kfp_scenario(
                    root / "kfp", service, kfp_cluster(service.address, store, image_python)
                )
        finally:
            beam.join()
        if errors:
            raise errors[0]
        (root / "objects.json").write_text(json.dumps(list_bucket()))
        write_histories(root)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
