"""The compiled Kubeflow YAML, run as open-source KFP runs it, decides what the
Beam runner decides on the same data, with every location in a bucket.

One scenario for both runners (tests/runners/bucket_scenario.py, run in a
network namespace with only loopback): a January-February download of the
2015 complaints arrives (span 20150228); the whole 2015 export arrives (span
20150319: drift is measured against the first span's statistics, the model
trains on the window of both spans and is compared with the first one); then a deliberately worse model (1 training
step) on the same window, which must be compared with the blessed one and
never pushed. Each KFP task runs in a pod of its own: the task image, an empty
disk, a pod's environment; it shares only the object store and the metadata
service. Each run's decisions are read back from each runner's ML Metadata
store with reporting/run_history.py and must match row for row (the table is
in docs/kubeflow.md).
"""

import json
from pathlib import Path

import pytest

from data import prepare
from models import signature_names
from reporting import run_history
from runners import kubeflow_runner
from settings import configs
from settings.configs import REPO_ROOT
from standins import task_image
from tests.conftest import E2E_TRAIN_STEPS, EXECUTING_COMPONENTS, SPAN_2015
from tests.runners import bucket_scenario, loopback

pytestmark = pytest.mark.e2e

JAN_FEB = prepare.span_number(bucket_scenario.JAN_FEB_DAY)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> Path:
    """The scenario's folder, once bucket_scenario.py has played it."""
    root = tmp_path_factory.mktemp("parity")
    task_image.build()  # here: the namespace below reaches no package index
    done = loopback.play("tests.runners.bucket_scenario", root, timeout=3600)
    logs = "".join(
        f"\n--- {log}\n" + log.read_text()[-2000:] for log in sorted(root.glob("*/run*.log"))
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:] + logs
    return root


@pytest.fixture(scope="module")
def histories(scenario):
    """(Beam runner's history, KFP stand-in's history)."""
    written = json.loads((scenario / "histories.json").read_text())
    return tuple(
        [run_history.RunDecisions(**row) for row in written[side]] for side in ("beam", "kfp")
    )


def test_kfp_replay_decides_what_the_beam_runner_decides(histories):
    beam_history, kfp_history = histories
    print("\nBeam runner:\n" + run_history.markdown(beam_history))
    print("\nKFP stand-in, compiled oss YAML:\n" + run_history.markdown(kfp_history))
    assert [r.decisions() for r in kfp_history] == [r.decisions() for r in beam_history]


def test_the_scenario_exercises_every_decision(histories):
    """The parity above would be empty if the scenario never used a baseline."""
    first, second, worse, private = histories[1]
    assert [first.span, second.span, worse.span, private.span] == [
        JAN_FEB,
        SPAN_2015,
        SPAN_2015,
        SPAN_2015,
    ]
    assert [first.window, second.window, worse.window, private.window] == [
        [JAN_FEB],
        [JAN_FEB, SPAN_2015],
        [JAN_FEB, SPAN_2015],
        [JAN_FEB, SPAN_2015],
    ]
    assert first.drift_baseline == "nothing (first statistics)"
    assert second.drift_baseline == f"span {JAN_FEB} statistics (run 1)"
    assert first.baseline_model == "nothing (no blessed model yet)"
    assert first.blessed and (first.push, first.version_number) == (run_history.NEW, 1)
    assert second.baseline_model == "run 1's model"
    # Measured: on the window's eval rows the 150-step window model (AUC 0.549)
    # does not beat run 1's, so run 1's model stays the baseline of run 3.
    latest_blessed = "run 2's model" if second.blessed else "run 1's model"
    assert worse.baseline_model == latest_blessed
    assert worse.blessed is False and worse.pushed == "nothing"
    assert private.blessed is False and private.pushed == "nothing"


def test_a_model_over_the_privacy_budget_is_blessed_by_neither_runner(scenario, histories):
    """The last run trains with DP-SGD under a budget below its epsilon: each
    runner's Trainer records the epsilon the accountant gives for the steps,
    batch and rows it records, and each runner's Evaluator refuses it."""
    import dp_accounting
    from ml_metadata import metadata_store
    from tfx.orchestration import metadata

    from components import artifact_properties as props

    for path in (scenario / "beam" / "metadata.sqlite", scenario / "cluster-metadata.sqlite"):
        store = metadata_store.MetadataStore(metadata.sqlite_metadata_connection_config(str(path)))
        (model,) = [
            a
            for a in store.get_artifacts_by_type("Model")
            if props.DP_EPSILON in a.custom_properties
        ]
        record = json.loads(model.custom_properties[props.PRIVACY_ACCOUNTING].string_value)
        steps, batch, rows = record["steps"], record["batch_size"], record["train_rows"]
        assert (steps, batch) == (E2E_TRAIN_STEPS, configs.PipelineConfig().batch_size)
        # Independently: Poisson-sampled Gaussian steps, composed by RDP.
        event = dp_accounting.SelfComposedDpEvent(
            dp_accounting.PoissonSampledDpEvent(
                batch / rows, dp_accounting.GaussianDpEvent(record["noise_multiplier"])
            ),
            steps,
        )
        epsilon = dp_accounting.rdp.RdpAccountant().compose(event).get_epsilon(record["delta"])
        assert model.custom_properties[props.DP_EPSILON].double_value == pytest.approx(epsilon)
        assert epsilon > bucket_scenario.PRIVATE_OVER_BUDGET["max_epsilon"]
        (refused,) = [
            a
            for a in store.get_artifacts_by_type("ModelBlessing")
            if props.PRIVACY_REFUSED in a.custom_properties
        ]
        assert refused.custom_properties[props.BLESSED].int_value == 0
        assert "is over the privacy budget of 0.1" in (
            refused.custom_properties[props.PRIVACY_REFUSED].string_value
        )
    log = (scenario / "beam" / "run4.log").read_text()
    assert "  privacy     DP-SGD: epsilon" in log and "blessed     NO: epsilon" in log, log


def test_every_artifact_either_runner_records_lives_in_the_bucket(scenario):
    """Nothing a task wrote stayed on a pod's disk: every URI in both stores
    is in the bucket, with its files there."""
    from ml_metadata import metadata_store
    from tfx.orchestration import metadata

    objects = json.loads((scenario / "objects.json").read_text())
    for prefix, path in (
        ("beam", scenario / "beam" / "metadata.sqlite"),
        ("kfp", scenario / "cluster-metadata.sqlite"),
    ):
        store = metadata_store.MetadataStore(metadata.sqlite_metadata_connection_config(str(path)))
        # A Pusher that pushed nothing records an artifact with no files.
        uris = [
            a.uri
            for a in store.get_artifacts()
            if a.uri
            and not (
                "pushed" in a.custom_properties and not a.custom_properties["pushed"].int_value
            )
        ]
        root = f"gs://{bucket_scenario.BUCKET}/{prefix}/pipeline_root/"
        assert uris and all(uri.startswith(root) for uri in uris), uris
        for uri in uris:
            name = uri[len(f"gs://{bucket_scenario.BUCKET}/") :]
            assert any(o == name or o.startswith(name + "/") for o in objects), uri


def test_the_pushed_models_and_the_spans_are_in_the_bucket(scenario, histories):
    """Preparation wrote the spans into the bucket and nothing named after a
    URI on the local disk; each pushed version is a SavedModel there."""
    objects = json.loads((scenario / "objects.json").read_text())
    assert not Path("gs:").exists() and not (REPO_ROOT / "gs:").exists()
    model = configs.PipelineConfig().model_name
    for prefix in ("beam", "kfp"):
        for span in (JAN_FEB, SPAN_2015):
            assert f"{prefix}/spans/span-{span}/complaints.csv" in objects
        served = [o for o in objects if o.startswith(f"{prefix}/serving_model/{model}/")]
        versions = {o.split("/")[3] for o in served}
        pushes = sum(1 for row in histories[0] if row.pushed.startswith("new version"))
        assert len(versions) == pushes, served
        assert all(
            f"{prefix}/serving_model/{model}/{v}/saved_model.pb" in objects for v in versions
        )


def test_the_beam_runners_reports_are_written_into_the_bucket(scenario):
    objects = json.loads((scenario / "objects.json").read_text())
    folder = f"beam/reports/{configs.PipelineConfig().pipeline_name}/"
    pages = [o for o in objects if o.startswith(folder) and o.endswith(".html")]
    assert folder + "index.html" in pages and len(pages) == len(bucket_scenario.SCENARIO) + 1


def test_a_bucket_run_reuses_what_the_bucket_holds(scenario):
    """The worse model's run: the same spans, so TFX's cache answers from the
    bucket for the data components; only training onwards runs."""
    output = (scenario / "beam" / "run3.log").read_text()
    for component in ("CsvExampleGen", "StatisticsGen", "Transform"):
        assert f"  = {component} cached in" in output, output
    assert "  = Trainer finished in" in output
    first = (scenario / "beam" / "run1.log").read_text()
    for component in EXECUTING_COMPONENTS:
        assert f"  = {component} finished in" in first, first


def test_every_task_fits_the_memory_it_declares(scenario):
    """The compiled memory (also the limit the stand-in enforces) covers the
    peak of every task measured on this scenario."""
    tasks = json.loads((scenario / "kfp" / "tasks.json").read_text())
    peaks = {
        name: task["peak_memory_gb"]
        for run in tasks
        for name, task in run.items()
        if task["peak_memory_gb"] is not None
    }
    print("\npeak memory per task (GB):", json.dumps(peaks, indent=1))
    declared = kubeflow_runner.task_resources(configs.PipelineConfig())["memoryLimit"]
    assert peaks and max(peaks.values()) < declared


def test_the_report_reads_the_clusters_records(scenario):
    page = (scenario / "kfp" / "report.html").read_text()
    assert "Not blessed, not pushed" in page and 'class="bar"' in page
    # The last run: a private model over its budget, refused for that.
    assert "is over the privacy budget of 0.1" in page and "DP-SGD: epsilon" in page


def test_a_model_a_kfp_task_pushed_is_served_from_the_bucket(scenario):
    """No copy by hand: models.config names the bucket, and the serving
    stand-in loads the versions from it through TF's GCS filesystem."""
    served = json.loads((scenario / "kfp" / "served.json").read_text())
    assert served["model_config_exit"] == 0 and served["client_exit"] == 0, served
    base = f'base_path: "gs://{bucket_scenario.BUCKET}/kfp/serving_model/'
    assert base in served["models_config"], served["models_config"]
    answer = json.loads(served["answer"])
    (probability,) = answer[signature_names.PREDICTION_KEY]
    assert 0.0 < probability < 1.0
