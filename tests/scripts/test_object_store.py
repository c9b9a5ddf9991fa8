"""scripts/object_store.sh, and what the Beam runner says when the store or a
bucket is missing. Whole runs on bucket roots (both runners, TF's and Beam's
own GCS clients talking to the local store) are in
tests/runners/test_kfp_parity.py.

Everything runs in a network namespace that has only loopback (`unshare -n`),
so a client that looked for a real endpoint or the metadata server would fail
the test instead of sending traffic off the machine."""

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, small_config

pytestmark = pytest.mark.e2e

SCRIPT = REPO_ROOT / "scripts" / "object_store.sh"
BUCKET = "cfpb"


@pytest.fixture(scope="module")
def refused(tmp_path_factory):
    """{case: (exit code, output)} of the Beam runner against the local store:
    a bucket that does not exist, a revoked key, no credentials, then the
    store stopped. (Whole runs on
    bucket roots, for both runners, are in tests/runners/test_kfp_parity.py.)"""
    root = tmp_path_factory.mktemp("object_store")
    config = small_config(
        root,
        data_root=f"gs://{BUCKET}/spans",
        pipeline_root=f"gs://{BUCKET}/pipeline_root",
        serving_model_dir=f"gs://{BUCKET}/serving_model",
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
        {SCRIPT} status > {root}/status.log
        source {store}/env.sh
        {runner} --serving-model-dir=gs://no-such-bucket/m > {root}/missing.log 2>&1
        echo $? > {root}/missing.rc
        # A key the store no longer honours (Google's invalid_grant), and none at all.
        printf '{{"type": "authorized_user", "client_id": "c", "client_secret": "s", "refresh_token": "revoked"}}' > {root}/revoked.json
        GOOGLE_APPLICATION_CREDENTIALS={root}/revoked.json {runner} > {root}/revoked.log 2>&1
        echo $? > {root}/revoked.rc
        (unset GOOGLE_APPLICATION_CREDENTIALS; {runner} > {root}/none.log 2>&1; echo $? > {root}/none.rc)
        {python} -m tests.scripts.test_object_store {store}/env.sh {root}
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
        timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "running" in (root / "status.log").read_text()
    return {
        case: (int((root / f"{case}.rc").read_text()), (root / f"{case}.log").read_text())
        for case in ("missing", "revoked", "none", "down", "pod-with-key", "pod-without-key")
    }


def test_a_missing_bucket_is_one_line_naming_the_setting(refused):
    code, output = refused["missing"]
    assert code == 1, output
    assert (
        "error: --serving-model-dir gs://no-such-bucket/m: bucket no-such-bucket does not exist"
        in output
    ), output
    assert "Preparing spans" not in output and "Traceback" not in output


def test_a_revoked_key_is_one_line_naming_the_setting(refused):
    code, output = refused["revoked"]
    assert code == 1, output
    assert (
        f"error: --data-root gs://{BUCKET}/spans: the credentials were refused when renewing "
        "them (invalid_grant: Token has been expired or revoked.)" in output
    ), output
    assert "Preparing spans" not in output and "Traceback" not in output


def test_no_credentials_is_one_line_naming_the_setting(refused):
    code, output = refused["none"]
    assert code == 1, output
    assert f"error: --data-root gs://{BUCKET}/spans: no Google credentials found" in output
    assert "Preparing spans" not in output and "Traceback" not in output


def test_a_task_pod_without_the_key_stops_at_once_and_with_it_reaches_the_bucket(refused):
    """KFP pods get the store's key only as the operator mounts it (a Secret):
    the stand-in pod has nothing of this machine's credentials, and the store
    refuses anonymous callers as GCS does. The check every task makes before
    its node runs (runners/node_launcher.py) then names what is missing."""
    code, output = refused["pod-without-key"]
    assert code == 1, output
    assert "--pipeline-root gs://cfpb/pipeline_root: no Google credentials found" in output
    code, output = refused["pod-with-key"]
    assert code == 0, output


def test_an_unreachable_store_is_one_line_naming_the_setting(refused):
    """The store stopped: the first location setting checked is named, and
    nothing starts (no prepared span, no run)."""
    code, output = refused["down"]
    assert code == 1, output
    assert f"error: --data-root gs://{BUCKET}/spans: cannot reach the object store" in output
    assert "Preparing spans" not in output and "Traceback" not in output


def test_an_s3_location_is_refused_with_the_reason(tmp_path):
    from tests.conftest import run_beam_runner

    config = small_config(tmp_path, pipeline_root="s3://bucket/root")
    code, output = run_beam_runner(config.as_flags())
    assert code == 1
    assert "--pipeline-root s3://bucket/root: s3:// through tensorflow-io returns wrong" in output
    assert "docs/object-store.md" in output


def _pods(env_file: Path, root: Path) -> None:
    """Runs the reachability check a task makes in two task pods, one given
    the store's key as a mounted Secret and one given everything but the key
    (`<case>.rc` and `<case>.log` under root)."""
    from standins import kfp_pod, task_image

    settings = kfp_pod.local_store_settings(env_file)
    without_key = {
        "env": {k: v for k, v in settings["env"].items() if k != "GOOGLE_APPLICATION_CREDENTIALS"},
        "ca_bundle": settings["ca_bundle"],
    }
    check = (
        "from data import storage; "
        "storage.check_reachable('gs://cfpb/pipeline_root', '--pipeline-root')"
    )
    for case, given in (("pod-with-key", settings), ("pod-without-key", without_key)):
        cluster = kfp_pod.Cluster(
            image_python=task_image.build(), metadata_grpc="127.0.0.1:1", **given
        )
        result = kfp_pod.run(
            cluster, ["python", "-c", check], root / case, root / f"{case}.log", case
        )
        (root / f"{case}.rc").write_text(str(result.returncode))


if __name__ == "__main__":
    _pods(Path(sys.argv[1]), Path(sys.argv[2]))
