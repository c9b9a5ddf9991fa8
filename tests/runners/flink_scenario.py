"""The pipeline's Beam work on a Flink cluster, next to the DirectRunner, for
tests/runners/test_flink.py.

Run inside a network namespace that has only loopback (as bucket_scenario.py):

    unshare -n sh -c 'ip link set lo up && python -m tests.runners.flink_scenario ROOT'

It starts the local object store and a Flink cluster (scripts/flink.sh: a
JobManager, two TaskManagers, Beam's job server; the TaskManagers inherit the
store's settings, as workers hold their own credentials), then runs the
pipeline twice on the same two exports: with the Beam runner on Flink, every
location in the bucket (the workers share no disk with the runner but the
store), and on the DirectRunner with local folders. Then the DirectRunner's
model is evaluated again by the Evaluator's executor on Flink: the same model
and rows on both engines.

What the test reads afterwards, under ROOT: `parity.json` (what both runs
decided, and every comparison), `flink_jobs.json` (the cluster's job list),
`objects.json` (what the Flink run wrote to the bucket), `{flink,direct}/run.log`.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.conftest import small_config
from tests.runners import loopback

REPO_ROOT = Path(__file__).resolve().parents[2]
BUCKET = "cfpb"
FLINK_SCRIPT = REPO_ROOT / "scripts" / "flink.sh"
# Float statistics are sums in a different order on two engines.
RELATIVE_TOLERANCE = 1e-9


def configs(root: Path, cluster_env: dict[str, str]):
    """(Flink config, DirectRunner config) on the same exports and slice; the
    Flink side's engine settings as scripts/flink.sh wrote them."""
    from settings import beam
    from settings.configs import PipelineConfig

    flink = small_config(
        root / "flink",
        **beam.engine_settings(PipelineConfig.from_env(cluster_env)),
        data_root=f"gs://{BUCKET}/flink/spans",
        pipeline_root=f"gs://{BUCKET}/flink/pipeline_root",
        serving_model_dir=f"gs://{BUCKET}/flink/serving_model",
        report_dir=str(root / "flink" / "reports"),
    )
    direct = small_config(root / "direct", beam_runner="direct")
    return flink, direct


def run(config, log: Path) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        return subprocess.run(
            [sys.executable, "-m", "runners.beam_runner", *config.as_flags()],
            stdout=out,
            stderr=subprocess.STDOUT,
        ).returncode


def _store(config):
    from ml_metadata import metadata_store

    from settings import metadata

    return metadata_store.MetadataStore(metadata.connection_config(config))


def _latest(store, type_name: str, node_id: str = ""):
    """The newest artifact of a type (that node `node_id` wrote, if given)."""
    written = [
        a for a in store.get_artifacts_by_type(type_name) if not node_id or f"/{node_id}/" in a.uri
    ]
    return max(written, key=lambda a: a.id)


def _execution(store, type_suffix: str):
    for execution in store.get_executions():
        kind = store.get_execution_types_by_id([execution.type_id])[0].name
        if kind.endswith(type_suffix):
            return execution
    raise LookupError(type_suffix)


def _close(a, b) -> bool:
    """Equal, floats within RELATIVE_TOLERANCE, recursively."""
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=RELATIVE_TOLERANCE, abs_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def statistics(flink_store, direct_store) -> dict:
    """Per split: both row counts and the features whose statistics differ."""
    import tensorflow_data_validation as tfdv
    from google.protobuf import json_format

    compared = {}
    for split in ("train", "eval"):
        sides = []
        for store in (flink_store, direct_store):
            uri = _latest(store, "ExampleStatistics").uri
            stats = tfdv.load_stats_binary(f"{uri}/Split-{split}/FeatureStats.pb").datasets[0]
            sides.append(
                (
                    stats.num_examples,
                    {
                        ".".join(f.path.step): json_format.MessageToDict(
                            f, preserving_proto_field_name=True
                        )
                        for f in stats.features
                    },
                )
            )
        (rows_f, features_f), (rows_d, features_d) = sides
        compared[split] = {
            "rows": [rows_f, rows_d],
            "features": sorted(features_d),
            "differing": sorted(
                name
                for name in features_f.keys() | features_d.keys()
                if not _close(features_f.get(name), features_d.get(name))
            ),
        }
    return compared


def anomalies(flink_store, direct_store) -> dict:
    from tensorflow_metadata.proto.v0 import anomalies_pb2
    from tfx.dsl.io import fileio

    compared = {}
    for split in ("train", "eval"):
        sides = []
        for store in (flink_store, direct_store):
            found = anomalies_pb2.Anomalies()
            path = f"{_latest(store, 'ExampleAnomalies').uri}/Split-{split}/SchemaDiff.pb"
            with fileio.open(path, "rb") as f:
                found.ParseFromString(f.read())
            sides.append(sorted(found.anomaly_info))
        compared[split] = sides
    return compared


def _files(uri: str, pattern: str) -> dict[str, bytes]:
    from tfx.dsl.io import fileio

    files = {}
    for path in fileio.glob(f"{uri}/{pattern}"):
        with fileio.open(path, "rb") as f:
            files[path[len(uri) + 1 :]] = f.read()
    return files


def transform(flink_store, direct_store) -> dict:
    """Vocabularies byte for byte; the transformed rows (vocabulary ids and
    quantile buckets of every row) as a multiset: shards and order differ,
    and so do the bytes of equal examples (a proto map's order)."""
    graphs = [
        _files(_latest(s, "TransformGraph").uri, "transform_fn/assets/*")
        for s in (flink_store, direct_store)
    ]
    rows = []
    for store in (flink_store, direct_store):
        uri = _latest(store, "Examples", "Transform").uri
        records: list[bytes] = []
        for data in _files(uri, "Split-*/*.gz").values():
            records.extend(_tfrecords(gzip.decompress(data)))
        rows.append(sorted(_canonical(record) for record in records))
    return {
        "vocabularies": sorted(graphs[1]),
        "vocabularies_differing": sorted(
            n for n in graphs[0].keys() | graphs[1].keys() if graphs[0].get(n) != graphs[1].get(n)
        ),
        "transformed_rows": [len(rows[0]), len(rows[1])],
        "transformed_rows_identical": rows[0] == rows[1],
    }


def _canonical(record: bytes) -> str:
    """A serialized tf.train.Example as text that equal examples share."""
    from google.protobuf import json_format
    from tensorflow.core.example import example_pb2

    example = example_pb2.Example.FromString(record)
    return json.dumps(json_format.MessageToDict(example), sort_keys=True)


def _tfrecords(data: bytes) -> list[bytes]:
    """The records of an uncompressed TFRecord file (length, crc, data, crc)."""
    records, at = [], 0
    while at < len(data):
        length = int.from_bytes(data[at : at + 8], "little")
        records.append(data[at + 12 : at + 12 + length])
        at += 12 + length + 4
    return records


def reevaluate_on_flink(flink_config, direct_store, root: Path) -> dict:
    """The DirectRunner run's model and eval rows, judged again by the
    Evaluator's executor with the Flink run's Beam options: its metrics and
    blessing next to the DirectRunner Evaluator's."""
    from tfx.components.evaluator import executor as evaluator_executor
    from tfx.dsl.io import fileio
    from tfx.types import artifact_utils, standard_artifacts, standard_component_specs

    from components import evaluation_files
    from settings import beam

    execution = _execution(direct_store, "Evaluator")
    inputs: dict[str, list] = {}
    for event in direct_store.get_events_by_execution_ids([execution.id]):
        if event.type == event.INPUT:
            (artifact,) = direct_store.get_artifacts_by_id([event.artifact_id])
            kind = direct_store.get_artifact_types_by_id([artifact.type_id])[0]
            key = event.path.steps[0].key
            inputs.setdefault(key, []).append(artifact_utils.deserialize_artifact(kind, artifact))
    parameters = standard_component_specs.EvaluatorSpec.PARAMETERS
    properties = {
        name: value.string_value or value.int_value
        for name, value in execution.custom_properties.items()
        if name in parameters
    }
    out = f"gs://{BUCKET}/flink/reevaluation"
    evaluation, blessing = standard_artifacts.ModelEvaluation(), standard_artifacts.ModelBlessing()
    evaluation.uri, blessing.uri = f"{out}/evaluation", f"{out}/blessing"
    context = evaluator_executor.Executor.Context(
        beam_pipeline_args=beam.pipeline_args(flink_config), tmp_dir=str(root / "tmp")
    )
    evaluator_executor.Executor(context).Do(
        {k: v for k, v in inputs.items() if k in ("examples", "model")},
        {"evaluation": [evaluation], "blessing": [blessing]},
        properties,
    )
    direct_evaluation = _latest(direct_store, "ModelEvaluation").uri
    direct_blessing = _latest(direct_store, "ModelBlessing").uri
    return {
        "metrics": [
            evaluation_files.metrics_by_slice(evaluation.uri),
            evaluation_files.metrics_by_slice(direct_evaluation),
        ],
        "blessed": [
            fileio.exists(f"{blessing.uri}/BLESSED"),
            fileio.exists(f"{direct_blessing}/BLESSED"),
        ],
    }


def compare(flink_config, direct_config, root: Path) -> dict:
    flink_store, direct_store = _store(flink_config), _store(direct_config)
    return {
        "statistics": statistics(flink_store, direct_store),
        "anomalies": anomalies(flink_store, direct_store),
        "transform": transform(flink_store, direct_store),
        "evaluation": reevaluate_on_flink(flink_config, direct_store, root),
        "pushed": [
            len(_files(c.serving_model_dir, f"{c.model_name}/*/saved_model.pb"))
            for c in (flink_config, direct_config)
        ],
    }


def flink_jobs(rest: str) -> list[dict]:
    with urllib.request.urlopen(f"http://{rest}/jobs/overview", timeout=10) as answer:
        return [{"name": job["name"], "state": job["state"]} for job in json.load(answer)["jobs"]]


def list_bucket(prefix: str) -> list[str]:
    from google.cloud import storage as gcs

    return sorted(blob.name for blob in gcs.Client().list_blobs(BUCKET, prefix=prefix))


def main(root: Path) -> int:
    from standins import kfp_pod

    flink_settings = {"CFPB_FLINK_DIR": str(root / "cluster")}
    with loopback.object_store(root / "store", BUCKET) as store_env:
        os.environ.update(store_env)
        try:
            # The TaskManagers (and their SDK workers) get the store's settings.
            subprocess.run(
                [str(FLINK_SCRIPT), "start"], env={**os.environ, **flink_settings}, check=True
            )
            cluster_env = kfp_pod.read_env_file(root / "cluster" / "env.sh")
            flink_config, direct_config = configs(root, cluster_env)
            codes = {
                "flink": run(flink_config, root / "flink" / "run.log"),
                "direct": run(direct_config, root / "direct" / "run.log"),
            }
            parity: dict = {"exit": codes}
            if codes == {"flink": 0, "direct": 0}:
                parity.update(compare(flink_config, direct_config, root))
            (root / "parity.json").write_text(json.dumps(parity, indent=1))
            rest = "127.0.0.1:" + (root / "cluster" / "rest.port").read_text().strip()
            (root / "flink_jobs.json").write_text(json.dumps(flink_jobs(rest)))
            (root / "objects.json").write_text(json.dumps(list_bucket("flink/")))
        finally:
            subprocess.run(
                [str(FLINK_SCRIPT), "stop"], env={**os.environ, **flink_settings}, check=False
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
