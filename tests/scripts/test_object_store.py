"""scripts/object_store.sh and the Beam runner on bucket roots: two runs whose
pipeline root and serving directory are `gs://` URIs, with TensorFlow's own GCS
filesystem and Beam's (google-cloud-storage) talking to the local store.

Everything runs in a network namespace that has only loopback (`unshare -n`),
so a client that looked for a real endpoint or the metadata server would fail
the test instead of sending traffic off the machine."""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from ml_metadata import metadata_store

from settings import metadata
from tests.conftest import EXECUTING_COMPONENTS, REPO_ROOT, SPAN_2014, SPAN_2015, small_config

pytestmark = pytest.mark.e2e

SCRIPT = REPO_ROOT / "scripts" / "object_store.sh"
BUCKET = "cfpb"

# Lists the bucket through the same environment the runs used.
_LIST_BUCKET = f"""
import json
from google.cloud import storage
client = storage.Client.create_anonymous_client()
print(json.dumps(sorted(b.name for b in client.list_blobs({BUCKET!r}))))
"""


@pytest.fixture(scope="module")
def bucket_runs(tmp_path_factory):
    """(config, [(exit code, output) of each run], object names in the bucket).
    The spans, the pipeline root and the served models are in the bucket;
    ML Metadata stays in a local SQLite file (its server is another issue)."""
    root = tmp_path_factory.mktemp("object_store")
    config = small_config(
        root,
        data_root=f"gs://{BUCKET}/spans",
        pipeline_root=f"gs://{BUCKET}/pipeline_root",
        serving_model_dir=f"gs://{BUCKET}/serving_model",
        min_auc=0.0,  # bless the first model, so that it is pushed into the bucket
    )
    python = shlex.quote(sys.executable)
    runner = f"{python} -m runners.beam_runner {shlex.join(config.as_flags())}"
    store = root / "store"
    script = f"""
        set -u
        ip link set lo up
        export CFPB_OBJECT_STORE_DIR={store} CFPB_BUCKET={BUCKET}
        trap '{SCRIPT} stop' EXIT
        {SCRIPT} start > {root}/start.log 2>&1 || {{ cat {root}/start.log; exit 1; }}
        source {store}/env.sh
        for run in 1 2; do
            {runner} > {root}/run$run.log 2>&1; echo $? > {root}/run$run.rc
        done
        {python} -c {shlex.quote(_LIST_BUCKET)} > {root}/objects.json
        {runner} --serving-model-dir=gs://no-such-bucket/m > {root}/missing.log 2>&1
        echo $? > {root}/missing.rc
        {SCRIPT} stop
        {runner} > {root}/down.log 2>&1; echo $? > {root}/down.rc
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("CFPB_")}
    done = subprocess.run(
        ["unshare", "-n", "bash", "-c", script],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    runs = [
        (int((root / f"run{n}.rc").read_text()), (root / f"run{n}.log").read_text()) for n in (1, 2)
    ]
    objects = json.loads((root / "objects.json").read_text())
    refused = {
        case: (int((root / f"{case}.rc").read_text()), (root / f"{case}.log").read_text())
        for case in ("missing", "down")
    }
    return config, runs, objects, refused


def test_a_run_on_bucket_roots_prepares_trains_and_pushes_into_the_bucket(bucket_runs):
    config, runs, objects, _ = bucket_runs
    code, output = runs[0]
    assert code == 0, output
    for component in EXECUTING_COMPONENTS:
        assert f"  = {component} finished in" in output, output
    pushed = f"  pushed      gs://{BUCKET}/serving_model/{config.model_name}/"
    assert pushed in output, output
    version = output.split(pushed, 1)[1].split()[0].strip("/")
    served = f"serving_model/{config.model_name}/{version}/"
    assert served + "saved_model.pb" in objects
    assert any(name.startswith(served + "variables/") for name in objects)
    # The exports were prepared into the bucket, and nothing named after a URI
    # was created on the local disk.
    for span in (SPAN_2014, SPAN_2015):
        assert f"spans/span-{span}/complaints.csv" in objects
    assert not Path("gs:").exists() and not (REPO_ROOT / "gs:").exists()


def test_every_artifact_mlmd_records_lives_in_the_bucket(bucket_runs):
    config, _, objects, _ = bucket_runs
    store = metadata_store.MetadataStore(metadata.connection_config(config))
    uris = [a.uri for a in store.get_artifacts() if a.uri]
    assert uris
    assert all(uri.startswith(f"gs://{BUCKET}/pipeline_root/") for uri in uris), uris
    for uri in uris:  # each recorded artifact has its files in the bucket
        prefix = uri[len(f"gs://{BUCKET}/") :]
        assert any(name == prefix or name.startswith(prefix + "/") for name in objects), uri


def test_a_second_run_on_the_bucket_is_answered_from_cache(bucket_runs):
    _, runs, _, _ = bucket_runs
    code, output = runs[1]
    assert code == 0, output
    for component in ("CsvExampleGen", "StatisticsGen", "Transform", "Trainer", "Evaluator"):
        assert f"  = {component} cached in" in output, output
    assert "pushed      nothing new: version " in output, output


def test_a_missing_bucket_is_one_line_naming_the_setting(bucket_runs):
    *_, refused = bucket_runs
    code, output = refused["missing"]
    assert code == 1, output
    assert (
        "error: --serving-model-dir gs://no-such-bucket/m: bucket no-such-bucket does not exist"
        in output
    ), output
    assert "Preparing spans" not in output and "Traceback" not in output


def test_an_unreachable_store_is_one_line_naming_the_setting(bucket_runs):
    """The store stopped: the first location setting checked is named, and
    nothing starts (no prepared span, no run)."""
    *_, refused = bucket_runs
    code, output = refused["down"]
    assert code == 1, output
    assert f"error: --data-root gs://{BUCKET}/spans: cannot reach the object store" in output
    assert "Preparing spans" not in output and "Traceback" not in output


def test_an_s3_location_is_refused_with_the_reason(tmp_path):
    from tests.conftest import run_beam_runner

    config = small_config(tmp_path, pipeline_root="s3://bucket/root")
    code, output = run_beam_runner(config.as_flags())
    assert code == 1
    assert "--pipeline-root s3://bucket/root: s3:// is not supported" in output
    assert "docs/object-store.md" in output
