"""The four serving signatures of the pushed model, on raw complaints (end to end)."""

import csv
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from data import prepare
from models import features, signature_names
from tests.conftest import SPAN_2015, pushed_model_dir

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def pushed(e2e):
    config, _ = e2e
    return tf.saved_model.load(str(pushed_model_dir(config)))


@pytest.fixture(scope="module")
def complaints(e2e):
    """Three real complaints from the run's data, one with empty fields."""
    config, _ = e2e
    path = prepare.span_dir(Path(config.data_root), SPAN_2015) / prepare.SPAN_FILE_NAME
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    sparse = next(r for r in rows if not r["sub_product"] and not r["sub_issue"])
    full = [r for r in rows if all(r[n] for n in features.RAW_INPUT_NAMES)][:2]
    return full + [sparse]


def _example(row) -> bytes:
    feature = {}
    for name in features.RAW_INPUT_NAMES:
        if not row[name]:
            continue  # as CsvExampleGen does for empty cells
        if name == "zip_code":
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(row[name])]))
        else:
            feature[name] = tf.train.Feature(
                bytes_list=tf.train.BytesList(value=[row[name].encode()])
            )
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _raw_tensors(rows):
    return {
        name: tf.constant([int(r[name] or 0) for r in rows], tf.int64)
        if name == "zip_code"
        else tf.constant([r[name] for r in rows])
        for name in features.RAW_INPUT_NAMES
    }


def test_pushed_model_is_in_tf_serving_layout(e2e):
    model_dir = pushed_model_dir(e2e[0])
    assert model_dir.name.isdigit()  # TF Serving loads numeric version folders
    assert (model_dir / "saved_model.pb").is_file()
    assert (model_dir / "variables").is_dir()


def test_the_model_has_exactly_the_four_signatures(pushed):
    assert set(pushed.signatures) == {
        "serving_default",
        signature_names.RAW_SIGNATURE,
        signature_names.CLASSIFICATION_SIGNATURE,
        signature_names.REGRESSION_SIGNATURE,
    }
    default = pushed.signatures["serving_default"]
    assert set(default.structured_input_signature[1]) == {signature_names.EXAMPLES_INPUT}
    raw = pushed.signatures[signature_names.RAW_SIGNATURE]
    assert set(raw.structured_input_signature[1]) == set(features.RAW_INPUT_NAMES)
    assert set(raw.structured_outputs) == {signature_names.PREDICTION_KEY}


def test_tf_example_signature_returns_probabilities(pushed, complaints):
    serialized = tf.constant([_example(r) for r in complaints])
    probabilities = pushed.signatures["serving_default"](examples=serialized)[
        signature_names.PREDICTION_KEY
    ].numpy()
    assert probabilities.shape == (3, 1)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()


def test_raw_signature_agrees_with_the_tf_example_signature(pushed, complaints):
    from_examples = pushed.signatures["serving_default"](
        examples=tf.constant([_example(r) for r in complaints])
    )[signature_names.PREDICTION_KEY]
    from_raw = pushed.signatures[signature_names.RAW_SIGNATURE](**_raw_tensors(complaints))[
        signature_names.PREDICTION_KEY
    ]
    np.testing.assert_allclose(from_raw.numpy(), from_examples.numpy(), rtol=1e-5)
    assert ((from_raw.numpy() >= 0) & (from_raw.numpy() <= 1)).all()


def test_classification_and_regression_agree_with_the_predict_signature(pushed, complaints):
    serialized = tf.constant([_example(r) for r in complaints])
    probability = pushed.signatures["serving_default"](examples=serialized)[
        signature_names.PREDICTION_KEY
    ].numpy()
    classified = pushed.signatures[signature_names.CLASSIFICATION_SIGNATURE](inputs=serialized)
    assert (
        classified[signature_names.CLASSIFY_CLASSES].numpy().tolist()
        == [[c.encode() for c in features.LABEL_CLASSES]] * 3
    )
    scores = classified[signature_names.CLASSIFY_SCORES].numpy()
    np.testing.assert_allclose(scores[:, 1:], probability, rtol=1e-5)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)
    regressed = pushed.signatures[signature_names.REGRESSION_SIGNATURE](inputs=serialized)
    np.testing.assert_allclose(
        regressed[signature_names.REGRESS_OUTPUTS].numpy(), probability, rtol=1e-5
    )


def test_predictions_depend_on_the_input(pushed, complaints):
    probabilities = (
        pushed.signatures[signature_names.RAW_SIGNATURE](**_raw_tensors(complaints))[
            signature_names.PREDICTION_KEY
        ]
        .numpy()
        .ravel()
    )
    assert len(set(np.round(probabilities, 6))) > 1


REQUIRED = features.REQUIRED_INPUT_NAMES
EXAMPLE_SIGNATURES = (
    ("serving_default", "examples"),
    (signature_names.CLASSIFICATION_SIGNATURE, "inputs"),
    (signature_names.REGRESSION_SIGNATURE, "inputs"),
)


@pytest.mark.parametrize("name", REQUIRED)
def test_every_signature_refuses_a_complaint_without_a_required_value(pushed, complaints, name):
    # The same missing-value rule on every signature: left out of a tf.Example
    # (as CsvExampleGen writes an empty cell) or sent empty, a required value
    # is refused with its name, never answered as an out-of-vocabulary guess.
    left_out = dict(complaints[0], **{name: ""})
    for signature, argument in EXAMPLE_SIGNATURES:
        with pytest.raises(tf.errors.InvalidArgumentError, match=name):
            pushed.signatures[signature](**{argument: tf.constant([_example(left_out)])})
    sent_empty = tf.train.Example.FromString(_example(complaints[0]))
    sent_empty.features.feature[name].bytes_list.value[0] = b""
    for signature, argument in EXAMPLE_SIGNATURES:
        with pytest.raises(tf.errors.InvalidArgumentError, match=f"{name} is required"):
            pushed.signatures[signature](
                **{argument: tf.constant([sent_empty.SerializeToString()])}
            )
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"{name} is required"):
        pushed.signatures[signature_names.RAW_SIGNATURE](**_raw_tensors([left_out]))


def test_every_signature_answers_a_complaint_without_its_optional_values(pushed, complaints):
    sparse = dict(complaints[0], **{n: "" for n in features.RAW_INPUT_NAMES if n not in REQUIRED})
    answers = [
        pushed.signatures[signature_names.RAW_SIGNATURE](**_raw_tensors([sparse]))[
            signature_names.PREDICTION_KEY
        ]
        .numpy()
        .item()
    ]
    outputs = {
        "serving_default": signature_names.PREDICTION_KEY,
        signature_names.REGRESSION_SIGNATURE: signature_names.REGRESS_OUTPUTS,
    }
    for signature, argument in EXAMPLE_SIGNATURES:
        result = pushed.signatures[signature](**{argument: tf.constant([_example(sparse)])})
        answers.append(
            result[signature_names.CLASSIFY_SCORES].numpy()[0, 1]
            if signature == signature_names.CLASSIFICATION_SIGNATURE
            else result[outputs[signature]].numpy().item()
        )
    np.testing.assert_allclose(answers, answers[0], rtol=1e-5)
    assert 0 < answers[0] < 1
