"""Private training through the real pipeline on the Beam runner: the
Trainer's model records the epsilon the accountant gives for the steps, batch
and training rows it saw, and the Evaluator blesses no model over the privacy
budget (the KFP replay of the same: tests/runners/test_kfp_parity.py)."""

import json
import shutil
from pathlib import Path

import pytest

from components import artifact_properties as props
from reporting import summary
from tests.conftest import E2E_TRAIN_STEPS, run_beam_runner, small_config, tree_digest

pytestmark = pytest.mark.e2e

BUDGET = 0.2


@pytest.fixture(scope="module")
def private_run(e2e, tmp_path_factory):
    """A private run over budget beside a copy of the e2e run's spans and
    served model: (config, exit code, output, digest of the serving folder before)."""
    source, _ = e2e
    root = tmp_path_factory.mktemp("private_run")
    shutil.copytree(source.data_root, root / "spans")
    shutil.copytree(source.serving_model_dir, root / "serving_model")
    config = small_config(root, private_training=True, max_epsilon=BUDGET)
    served_before = tree_digest(root / "serving_model")
    code, output = run_beam_runner(config.as_flags())
    print(output)
    return config, code, output, served_before


def _store(config):
    from ml_metadata import metadata_store

    from settings import metadata

    return metadata_store.MetadataStore(metadata.connection_config(config))


def _count_train_rows(store, model) -> int:
    """Rows of Transform's train split that the Trainer read: counted here
    from the transformed examples, not taken from the record."""
    import tensorflow as tf

    (trainer,) = [
        e.execution_id for e in store.get_events_by_artifact_ids([model.id]) if e.type == e.OUTPUT
    ]
    inputs = [
        e.artifact_id for e in store.get_events_by_execution_ids([trainer]) if e.type == e.INPUT
    ]
    examples_type = store.get_artifact_type("Examples").id
    (examples,) = [a for a in store.get_artifacts_by_id(inputs) if a.type_id == examples_type]
    files = tf.io.gfile.glob(f"{examples.uri}/Split-train/*")
    return sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))


def test_the_model_records_the_epsilon_the_accountant_gives(private_run):
    import dp_accounting

    config, code, output, _ = private_run
    assert code == 0, output
    store = _store(config)
    (model,) = store.get_artifacts_by_type("Model")
    record = json.loads(model.custom_properties[props.PRIVACY_ACCOUNTING].string_value)
    assert (record["steps"], record["batch_size"]) == (E2E_TRAIN_STEPS, config.batch_size)
    assert record["noise_multiplier"] == config.dp_noise_multiplier
    assert record["train_rows"] == _count_train_rows(store, model)
    # Recomputed independently: each step a Poisson-sampled Gaussian
    # mechanism (rate batch / rows), one example per microbatch, RDP-composed.
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(
            record["batch_size"] / record["train_rows"],
            dp_accounting.GaussianDpEvent(config.dp_noise_multiplier),
        ),
        record["steps"],
    )
    epsilon = dp_accounting.rdp.RdpAccountant().compose(event).get_epsilon(config.dp_delta)
    assert model.custom_properties[props.DP_EPSILON].double_value == pytest.approx(epsilon)
    assert f"privacy     DP-SGD: epsilon {epsilon:.2f} at delta 1e-05" in output


def test_a_model_over_the_budget_is_not_blessed_and_nothing_is_pushed(private_run):
    config, code, output, served_before = private_run
    assert code == 0, output
    (blessing,) = _store(config).get_artifacts_by_type("ModelBlessing")
    assert blessing.custom_properties[props.BLESSED].int_value == 0
    refusal = blessing.custom_properties[props.PRIVACY_REFUSED].string_value
    assert f"is over the privacy budget of {BUDGET}" in refusal
    # One line says why, first among the reasons.
    assert f"  blessed     NO: {refusal}" in output
    assert tree_digest(Path(config.serving_model_dir)) == served_before
    run = summary.run_summary(config)
    assert run.pushed_path is None and run.privacy["epsilon"] > BUDGET
