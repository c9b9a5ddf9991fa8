"""The pushed model against TF Serving's rules, and REST JSON reaching it intact.

No TF Serving binary here: the signatures are read from saved_model.pb as TF
Serving's loader reads them and checked by its rules; REST bodies go through
TF Serving's JSON-to-tensor conversion (standins.tf_serving_rest) into the real
SavedModel and must give what the signatures give when called directly.
"""

import base64
import csv
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from data import prepare
from models import features, signature_names
from serving import contract
from standins import tf_serving_rest
from tests.conftest import SPAN_2015, pushed_model_dir

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def model_dir(e2e):
    return pushed_model_dir(e2e[0])


@pytest.fixture(scope="module")
def signature_defs(model_dir):
    return contract.read_signature_defs(model_dir)


@pytest.fixture(scope="module")
def loaded(model_dir):
    return tf.saved_model.load(str(model_dir))


@pytest.fixture(scope="module")
def rows(e2e):
    """Ten real complaints from the run's data, as a REST client would send them."""
    path = prepare.span_dir(Path(e2e[0].data_root), SPAN_2015) / prepare.SPAN_FILE_NAME
    with open(path, newline="") as f:
        raw = [r for _, r in zip(range(10), csv.DictReader(f), strict=False)]
    return [
        {n: int(r[n]) if n == "zip_code" and r[n] else r[n] for n in features.RAW_INPUT_NAMES}
        for r in raw
    ]


def _direct(loaded, rows):
    """Probabilities from calling serving_raw with tensors built here."""
    tensors = {
        n: tf.constant(
            [r[n] or (0 if n == "zip_code" else "") for r in rows],
            tf.int64 if n == "zip_code" else tf.string,
        )
        for n in features.RAW_INPUT_NAMES
    }
    return loaded.signatures[signature_names.RAW_SIGNATURE](**tensors)[
        signature_names.PREDICTION_KEY
    ].numpy()


def _example(row) -> bytes:
    return tf_serving_rest.examples({"examples": [{k: v for k, v in row.items() if v != ""}]})[0]


def test_pushed_model_meets_the_serving_contract(model_dir):
    assert contract.model_problems(model_dir) == []


def test_classify_and_regress_signatures_pass_tf_servings_rules(signature_defs):
    assert (
        contract.classify_problems(signature_defs[signature_names.CLASSIFICATION_SIGNATURE]) == []
    )
    assert contract.regress_problems(signature_defs[signature_names.REGRESSION_SIGNATURE]) == []
    # ...and the rules do reject the signatures that are not meant for those APIs.
    assert contract.classify_problems(signature_defs["serving_default"])
    assert contract.regress_problems(signature_defs[signature_names.RAW_SIGNATURE])


def test_a_folder_without_a_savedmodel_is_reported(tmp_path):
    (tmp_path / "variables").mkdir()
    assert "no saved_model.pb" in contract.model_problems(tmp_path)[0]


def test_rest_predict_row_format_gives_the_direct_probabilities(loaded, signature_defs, rows):
    body = {
        "signature_name": signature_names.RAW_SIGNATURE,
        "instances": [
            {n: r[n] or (0 if n == "zip_code" else "") for n in features.RAW_INPUT_NAMES}
            for r in rows
        ],
    }
    inputs = tf_serving_rest.predict_inputs(body, signature_defs[signature_names.RAW_SIGNATURE])
    outputs = loaded.signatures[signature_names.RAW_SIGNATURE](
        **{k: tf.constant(v) for k, v in inputs.items()}
    )
    reply = tf_serving_rest.predict_reply(
        {k: v.numpy() for k, v in outputs.items()}, row_format=True
    )
    got = np.array(reply["predictions"])  # one output: a plain value per instance
    np.testing.assert_allclose(got, _direct(loaded, rows), rtol=1e-6)
    assert len(set(np.round(got.ravel(), 6))) > 1


def test_rest_predict_on_b64_examples_matches_the_raw_signature(loaded, signature_defs, rows):
    body = {"instances": [{"b64": base64.b64encode(_example(r)).decode()} for r in rows]}
    inputs = tf_serving_rest.predict_inputs(body, signature_defs["serving_default"])
    got = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in inputs.items()})
    np.testing.assert_allclose(
        got[signature_names.PREDICTION_KEY].numpy(), _direct(loaded, rows), rtol=1e-5
    )


def test_rest_classify_and_regress_examples_match_the_direct_probabilities(loaded, rows):
    body = {"examples": [{k: v for k, v in r.items() if v != ""} for r in rows]}
    serialized = tf.constant(tf_serving_rest.examples(body))
    classified = loaded.signatures[signature_names.CLASSIFICATION_SIGNATURE](inputs=serialized)
    reply = tf_serving_rest.classify_reply(
        classified["classes"].numpy(), classified["scores"].numpy()
    )
    disputed = [dict(map(tuple, result))[features.LABEL_CLASSES[1]] for result in reply["result"]]
    np.testing.assert_allclose(disputed, _direct(loaded, rows).ravel(), rtol=1e-5)
    regressed = loaded.signatures[signature_names.REGRESSION_SIGNATURE](inputs=serialized)
    np.testing.assert_allclose(
        tf_serving_rest.regress_reply(regressed["outputs"].numpy())["result"],
        _direct(loaded, rows).ravel(),
        rtol=1e-5,
    )


@pytest.mark.parametrize(
    "body, message",
    [
        ({"instances": [{"product": "Mortgage"}]}, "the signature takes"),
        ({"instances": [{n: "abc" for n in features.RAW_INPUT_NAMES}]}, "not of type int64"),
        ({"instances": []}, "non-empty"),
        ({"instances": [{}], "inputs": {}}, "exactly one of"),
    ],
)
def test_bad_rest_predict_bodies_are_rejected(signature_defs, body, message):
    with pytest.raises(tf_serving_rest.RequestError, match=message):
        tf_serving_rest.predict_inputs(body, signature_defs[signature_names.RAW_SIGNATURE])
