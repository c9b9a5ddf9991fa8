"""Mirrors pipeline runs into an MLflow tracking server, and its model
registry into step with what TF Serving serves.

    python -m tracking.mlflow_mirror --mlflow-tracking-uri http://127.0.0.1:5000
    python -m tracking.mlflow_mirror --since 2026-12-01   # runs started that day or later

ML Metadata is the truth; MLflow gets a copy: one MLflow run per pipeline run
(experiment = the pipeline's name, run name and tag `pipeline_run_id` = the
run id), its settings, metrics and small files (tracking/run_record.py), and
one registered model version per pushed TF Serving version (tag
`serving_version`), with TF Serving's labels as aliases: `stable` and
`canary` point at the versions `serving/models.config` labels (or, before
that file is written, at the ones `python -m serving.model_config` would
label). A rollback there (`--canary <older>`) moves the alias back at the next
mirror. Everything is derived, never appended: mirroring again adds only what
is new, so runs and versions are never duplicated. The Beam runner mirrors
after each run when a tracking URI is set; an unreachable server is said once
and the next mirror catches up.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import logging
import os
import sys
import tempfile
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from data import storage
from reporting import queries, report, run_history
from serving import model_config
from settings import configs, metadata
from settings.configs import PipelineConfig
from tracking import run_record
from tracking.run_record import MIRROR_COMPLETE, PIPELINE_RUN_ID

# The registered model version's tag naming its TF Serving version folder.
SERVING_VERSION = "serving_version"
# Where a local version folder is copied in its run's artifacts (MLflow's
# server refuses a local path as a version's source: handlers.py
# `_validate_source_run`); a version in a bucket is linked by its gs:// URI.
MODEL_FOLDER = "serving_model"
# The client's defaults, unless the caller's environment sets them: no usage
# reports to mlflow-telemetry.io, no "View run at" lines on stdout, and a
# server that stops answering fails a mirror in about a minute, not after
# MLflow's default 7 retries with 2^n s backoff and 120 s timeouts (minutes).
CLIENT_ENVIRONMENT = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


class MirrorError(RuntimeError):
    """The tracking server cannot be reached, or refused what was sent."""


@dataclasses.dataclass
class Mirrored:
    """What one mirror did, for one line of output."""

    experiment: str
    added: list[str] = dataclasses.field(default_factory=list)  # pipeline run ids
    present: int = 0  # runs mirrored before
    unfinished: list[str] = dataclasses.field(default_factory=list)
    versions: list[str] = dataclasses.field(default_factory=list)  # serving versions registered
    aliases: dict[str, str] = dataclasses.field(default_factory=dict)  # alias -> serving version

    def describe(self) -> str:
        text = (
            f"{len(self.added)} run(s) added to experiment {self.experiment!r} "
            f"({self.present} mirrored before"
            + (f", {len(self.unfinished)} not over yet" if self.unfinished else "")
            + f"); {len(self.versions)} model version(s) registered"
        )
        if self.aliases:
            text += "; aliases " + ", ".join(
                f"{alias} -> serving version {version}"
                for alias, version in sorted(self.aliases.items())
            )
        return text


def unreachable(tracking_uri: str, timeout: float = 5.0) -> str | None:
    """Why the server does not answer its health check, or None when it does."""
    try:
        with urllib.request.urlopen(f"{tracking_uri.rstrip('/')}/health", timeout=timeout):
            return None
    except OSError as error:  # refused, timed out, HTTP error
        return f"{tracking_uri} does not answer ({error})"


def client(tracking_uri: str):
    """MLflow's client for one server (tracking and registry), nothing implicit."""
    for name, value in CLIENT_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    from mlflow import MlflowClient

    # Its INFO lines ("Waiting up to 300 seconds for model version to finish
    # creation") would interleave with the run summary.
    logging.getLogger("mlflow").setLevel(logging.WARNING)

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def mirror(
    config: PipelineConfig,
    connection_config=None,
    *,
    since: datetime.date | None = None,
    served_labels_file: Path = model_config.DEFAULT_OUTPUT,
    built: tuple[report.Report, str] | None = None,
) -> Mirrored:
    """Mirrors every run of the store not mirrored yet (or started on or
    after `since`), then the registry. `built` is a run's report already
    built and its page's location (the Beam runner's), so it is not read twice."""
    if config.mlflow_tracking_uri is None:
        raise MirrorError(
            "no tracking server: set --mlflow-tracking-uri (CFPB_MLFLOW_TRACKING_URI)"
        )
    if error := unreachable(config.mlflow_tracking_uri):
        raise MirrorError(error)
    connection_config = connection_config or metadata.connection_config(config)
    mlflow = client(config.mlflow_tracking_uri)
    experiment_id = _experiment(mlflow, config.pipeline_name)
    result = Mirrored(config.pipeline_name)
    mirrored = _mirrored_runs(mlflow, experiment_id)
    history = run_history.history(connection_config, config.pipeline_name)
    for row in history:
        if since and row.started and datetime.date.fromtimestamp(row.started) < since:
            continue
        existing = mirrored.get(row.run_id)
        if existing is not None and existing.data.tags.get(MIRROR_COMPLETE) == "true":
            result.present += 1
            continue
        if existing is not None:  # cut off mid-mirror: mirrored again, whole
            mlflow.delete_run(existing.info.run_id)
        if built is not None and built[0].run.run_id == row.run_id:
            run_report, page = built
        else:
            run_report = report.build(config, connection_config, row.run_id)
            page = str(report.save(run_report))
        if not run_record.is_over(run_report):
            result.unfinished.append(row.run_id)
            continue
        context_id = queries.run_context_id(connection_config, row.run_id)
        record = run_record.record(run_report, page, context_id)
        mirrored[row.run_id] = _send(mlflow, experiment_id, record, run_report)
        result.added.append(row.run_id)
    _mirror_registry(mlflow, config, history, mirrored, served_labels_file, result)
    return result


def _experiment(mlflow, name: str) -> str:
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return mlflow.create_experiment(name, tags={"source": "ML Metadata, by tracking.mlflow_mirror"})


def _mirrored_runs(mlflow, experiment_id: str) -> dict[str, Any]:
    """{pipeline run id: MLflow run} of the experiment's live runs."""
    runs: dict[str, Any] = {}
    token = None
    while True:
        page = mlflow.search_runs([experiment_id], max_results=1000, page_token=token)
        for run in page:
            if PIPELINE_RUN_ID in run.data.tags:
                runs[run.data.tags[PIPELINE_RUN_ID]] = run
        token = page.token
        if not token:
            return runs


def _send(mlflow, experiment_id: str, record: run_record.RunRecord, run_report) -> Any:
    """Creates the MLflow run whole: metadata, files, then the complete tag."""
    from mlflow.entities import Metric, Param, RunTag

    run = mlflow.create_run(
        experiment_id, start_time=record.start_ms, tags=record.tags, run_name=record.run_id
    )
    run_id = run.info.run_id
    params = [Param(k, v) for k, v in record.params.items()]
    metrics = [Metric(k, v, record.end_ms, 0) for k, v in record.metrics.items()]
    tags = [RunTag("mlflow.note.content", f"```\n{record.description}\n```")]
    # MLflow's batch limits: 100 params or tags, 1000 metrics per request.
    mlflow.log_batch(run_id, tags=tags)
    for start in range(0, len(params), 100):
        mlflow.log_batch(run_id, params=params[start : start + 100])
    for start in range(0, len(metrics), 1000):
        mlflow.log_batch(run_id, metrics=metrics[start : start + 1000])
    with tempfile.TemporaryDirectory() as folder:
        for artifact_folder, location in record.files.items():
            local = _local_copy(location, Path(folder) / artifact_folder)
            mlflow.log_artifact(run_id, str(local), artifact_folder)
        anomalies = Path(folder) / "anomalies.json"
        anomalies.write_text(run_record.anomalies_json(run_report))
        mlflow.log_artifact(run_id, str(anomalies), "anomalies")
    mlflow.set_tag(run_id, MIRROR_COMPLETE, "true")
    mlflow.set_terminated(run_id, record.status, end_time=record.end_ms)
    return mlflow.get_run(run_id)


def _local_copy(location: str, folder: Path) -> Path:
    """A file on this machine: itself, or a copy of one in a bucket."""
    if not configs.is_remote(location):
        return Path(location)
    folder.mkdir(parents=True, exist_ok=True)
    local = folder / location.rstrip("/").rsplit("/", 1)[-1]
    local.write_bytes(storage.location(location).read_bytes())
    return local


def served_labels(config: PipelineConfig, served_labels_file: Path) -> dict[str, int]:
    """{TF Serving label: version}: the written models.config, or before it
    exists, the labels `python -m serving.model_config` would write."""
    labels = model_config.read_labels(served_labels_file, config.model_name)
    if labels is not None:
        return labels
    model_dir = storage.location(config.model_dir)
    try:
        return model_config.choose_labels(model_config.pushed_versions(model_dir))
    except model_config.ModelConfigError:  # nothing pushed yet: no labels
        return {}


def _mirror_registry(
    mlflow,
    config: PipelineConfig,
    history: list[run_history.RunDecisions],
    mirrored: dict[str, Any],
    served_labels_file: Path,
    result: Mirrored,
) -> None:
    """One model version per version a mirrored run pushed, and TF Serving's
    labels as aliases (an alias whose version is not registered is removed:
    it never points at what is not served)."""
    from mlflow.exceptions import MlflowException

    name = config.model_name
    try:
        mlflow.get_registered_model(name)
    except MlflowException:
        mlflow.create_registered_model(
            name, description="Mirrored from ML Metadata: one version per TF Serving version."
        )
    registered = {
        v.tags.get(SERVING_VERSION): v.version
        for v in mlflow.search_model_versions(f"name = '{name}'")
    }
    model_dir = storage.location(config.model_dir)
    for row in history:
        if row.push != run_history.NEW or row.version in registered:
            continue
        run = mirrored.get(row.run_id)
        version_dir = model_dir / str(row.version)
        if run is None or not version_dir.is_dir():  # run not mirrored, or version deleted
            continue
        if configs.is_remote(str(version_dir)):
            source = str(version_dir)
        else:
            mlflow.log_artifacts(run.info.run_id, str(version_dir), MODEL_FOLDER)
            source = f"{run.info.artifact_uri}/{MODEL_FOLDER}"
        version = mlflow.create_model_version(
            name,
            source,
            run_id=run.info.run_id,
            tags={
                SERVING_VERSION: str(row.version),
                PIPELINE_RUN_ID: row.run_id,
                "serving_path": str(version_dir),
            },
            description=f"TF Serving version {row.version}, pushed by pipeline run {row.run_id}",
        )
        registered[str(row.version)] = version.version
        result.versions.append(str(row.version))
    current = mlflow.get_registered_model(name).aliases
    for label, serving_version in served_labels(config, served_labels_file).items():
        version = registered.get(str(serving_version))
        if version is None:
            if label in current:
                mlflow.delete_registered_model_alias(name, label)
            continue
        if current.get(label) != version:
            mlflow.set_registered_model_alias(name, label, version)
        result.aliases[label] = str(serving_version)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tracking.mlflow_mirror",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--since",
        type=datetime.date.fromisoformat,
        help="mirror only runs started on or after this day (YYYY-MM-DD); default: every "
        "run the store holds",
    )
    parser.add_argument(
        "--served-labels",
        type=Path,
        default=model_config.DEFAULT_OUTPUT,
        help="the models.config TF Serving reads, whose labels become the registry's "
        "aliases (default: %(default)s)",
    )
    config, args = configs.parse_args(parser, argv)
    try:
        result = mirror(config, since=args.since, served_labels_file=args.served_labels)
    except (MirrorError, model_config.ModelConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"MLflow {config.mlflow_tracking_uri}: {result.describe()}")
    return 0


def mirror_after_run(config: PipelineConfig, connection_config, built, stream: TextIO) -> None:
    """The runner's step after a run: mirror it (and any run a failed
    mirror left behind); one line either way, and the run's outcome stands."""
    if config.mlflow_tracking_uri is None:
        return
    try:
        result = mirror(config, connection_config, built=built)
    except Exception as error:  # noqa: BLE001 - a mirror never fails the run
        print(
            f"  mlflow      not mirrored: {error}; the next run or "
            "`python -m tracking.mlflow_mirror` catches up",
            file=stream,
        )
        return
    print(f"  mlflow      {result.describe()}", file=stream)


if __name__ == "__main__":
    sys.exit(main())
