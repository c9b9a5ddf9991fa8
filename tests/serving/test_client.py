"""The client end to end against the development stand-in on the real pushed
model (two versions, labelled by `serving.model_config`), over REST and gRPC,
including the error paths. The stand-in is not TF Serving; it speaks its
protocol for this model (standins/tf_serving.py).
"""

import json
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from models import features, signature_names
from serving import client, model_config
from standins import tf_serving
from tests.conftest import pushed_model_dir

pytestmark = pytest.mark.e2e

STABLE, CANARY = 100, 200
# Every complaint states when it arrived and when CFPB sent it to the company.
DATES = {"date_received": "2015-03-02", "date_sent_to_company": "2015-03-04"}
COMPLAINTS = [
    {
        **DATES,
        "product": "Debt collection",
        "issue": "Communication tactics",
        "state": "TX",
        "zip_code": 76119,
        "company_response": "In progress",
        "timely_response": "Yes",
    },
    {
        **DATES,
        "product": "Mortgage",
        "sub_product": "Conventional fixed mortgage",
        "issue": "Loan servicing, payments, escrow account",
        "state": "CA",
        "zip_code": "94110",
        "company_response": "Closed with explanation",
        "timely_response": "No",
        "consumer_disputed": "1",
    },  # a column of the data, ignored by the client
]


@pytest.fixture(scope="module")
def served(e2e, tmp_path_factory):
    """Stand-in serving the pushed model as versions 100 (stable) and 200 (canary)."""
    root = tmp_path_factory.mktemp("serving")
    model_dir = root / "serving_model" / e2e[0].model_name
    for version in (STABLE, CANARY):
        shutil.copytree(pushed_model_dir(e2e[0]), model_dir / str(version))
    config_path = root / "models.config"
    assert (
        model_config.main(
            [
                "--serving-model-dir",
                str(model_dir.parent),
                "--model-name",
                model_dir.name,
                "--output",
                str(config_path),
            ]
        )
        == 0
    )
    model = tf_serving.ServedModel.from_config(config_path, base_path=model_dir)
    server = tf_serving.StandIn(model, rest_port=0, grpc_port=0)
    yield server, model_dir
    server.stop()


@pytest.fixture(scope="module")
def input_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("client") / "complaints.json"
    path.write_text(json.dumps(COMPLAINTS))
    return path


@pytest.fixture(scope="module")
def expected(served):
    """Probabilities from the SavedModel called directly, without any server."""
    loaded = tf.saved_model.load(str(served[1] / str(CANARY)))
    complaints = [client.raw_instance(client.normalize(c)) for c in COMPLAINTS]
    tensors = {
        n: tf.constant(
            [c[n] for c in complaints], tf.int64 if n in client.INTEGER_FEATURES else tf.string
        )
        for n in features.RAW_INPUT_NAMES
    }
    return (
        loaded.signatures[signature_names.RAW_SIGNATURE](**tensors)[signature_names.PREDICTION_KEY]
        .numpy()
        .ravel()
    )


def _run(served, capsys, *argv):
    server, _ = served
    code = client.main(
        [
            "--host",
            "127.0.0.1",
            "--rest-port",
            str(server.rest_port),
            "--grpc-port",
            str(server.grpc_port),
            *argv,
        ]
    )
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
@pytest.mark.parametrize("api", ["predict", "classify"])
def test_answers_with_the_models_probabilities_and_version(
    served, input_file, expected, capsys, protocol, api
):
    code, out, err = _run(
        served, capsys, "--input", str(input_file), "--protocol", protocol, "--api", api, "--json"
    )
    assert code == 0, err
    answer = json.loads(out)
    assert answer["version"] == CANARY  # no label: TF Serving's latest version
    np.testing.assert_allclose(answer[signature_names.PREDICTION_KEY], expected, rtol=1e-5)


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_labels_and_versions_pick_the_answering_version(served, input_file, capsys, protocol):
    for pin, version in (
        (["--label", "stable"], STABLE),
        (["--label", "canary"], CANARY),
        (["--version", str(STABLE)], STABLE),
    ):
        code, out, err = _run(
            served, capsys, "--input", str(input_file), "--protocol", protocol, *pin
        )
        assert code == 0, err
        assert f"version {version}" in out.splitlines()[0]
        assert len(out.splitlines()) == 1 + len(COMPLAINTS)


@pytest.mark.parametrize("api", ["predict", "classify"])
@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_the_version_named_is_the_one_that_answered_while_a_label_moves(
    served, input_file, capsys, monkeypatch, protocol, api
):
    model = served[0].model
    monkeypatch.setitem(model.labels, "stable", STABLE)
    answered = []

    def answer_then_move_the_label(run):
        def wrapped(version, *args):
            answered.append(version)
            model.labels["stable"] = CANARY  # a rollout lands while the request runs
            return run(version, *args)

        return wrapped

    monkeypatch.setattr(model, "run", answer_then_move_the_label(model.run))
    monkeypatch.setattr(model, "run_on_examples", answer_then_move_the_label(model.run_on_examples))
    code, out, err = _run(
        served, capsys, "--input", str(input_file), "--protocol", protocol, "--api", api,
        "--label", "stable", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert answered and set(answered) == {STABLE}  # classify runs through run too
    assert json.loads(out)["version"] == STABLE


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_metadata_lists_the_signatures(served, capsys, protocol):
    code, out, err = _run(served, capsys, "--api", "metadata", "--protocol", protocol)
    assert code == 0, err
    assert f"version {CANARY}" in out
    for name in (
        "serving_default",
        signature_names.RAW_SIGNATURE,
        signature_names.CLASSIFICATION_SIGNATURE,
        signature_names.REGRESSION_SIGNATURE,
    ):
        assert f"  {name}: " in out


def test_complaint_from_flags(served, capsys):
    code, out, err = _run(
        served,
        capsys,
        "--product",
        "Mortgage",
        "--state",
        "CA",
        "--zip-code",
        "94110",
        "--company-response",
        "Closed with explanation",
        "--timely-response",
        "Yes",
        "--date-received",
        "2015-03-02",
        "--date-sent-to-company",
        "2015-03-04",
    )
    assert code == 0, err
    assert "complaint 1: dispute probability 0." in out


INCOMPLETE = {**DATES, "product": "Mortgage", "state": "CA", "zip_code": 94110}


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
@pytest.mark.parametrize("api", ["predict", "classify"])
def test_an_incomplete_complaint_is_refused_the_same_way_by_every_api(
    served, capsys, protocol, api
):
    # The client refuses it before sending...
    code, out, err = _run(
        served,
        capsys,
        "--product",
        "Mortgage",
        "--state",
        "CA",
        "--date-received",
        "2015-03-02",
        "--date-sent-to-company",
        "2015-03-04",
        "--protocol",
        protocol,
        "--api",
        api,
    )
    assert code == 2 and out == ""
    assert "company_response, timely_response must be given" in err
    # ...and the model refuses it from a client that skips that check.
    with pytest.raises(client.ServingError, match="company_response"):
        getattr(_client(served, protocol), api)([INCOMPLETE])


def _client(served, protocol):
    server, _ = served
    if protocol == "rest":
        return client.RestClient("127.0.0.1", server.rest_port, "cfpb_disputes")
    return client.GrpcClient("127.0.0.1", server.grpc_port, "cfpb_disputes")


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
@pytest.mark.parametrize("api", ["predict", "classify"])
def test_optional_fields_may_be_missing_on_every_api(served, capsys, protocol, api):
    required_only = {
        **DATES,
        "product": "Mortgage",
        "company_response": "Closed with explanation",
        "timely_response": "Yes",
    }
    answers = [
        getattr(_client(served, protocol), api)([client.normalize(complaint)]).probabilities
        for complaint in (required_only, {**required_only, "sub_product": "", "state": ""})
    ]
    assert answers[0] == answers[1]
    assert 0 < answers[0][0] < 1


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
@pytest.mark.parametrize(
    "pin, expected",
    [
        (["--model-name", "no_such_model"], "no_such_model"),
        (["--version", "7"], "Specific(cfpb_disputes, 7)"),
        (["--label", "beta"], "label: beta"),
    ],
)
def test_server_refusals_are_reported(served, input_file, capsys, protocol, pin, expected):
    code, out, err = _run(served, capsys, "--input", str(input_file), "--protocol", protocol, *pin)
    assert code == 1 and out == ""
    assert err.startswith("error: TF Serving answered ") and expected in err


def test_server_side_rejection_of_a_bad_value(served):
    server, _ = served
    rest = client.RestClient("127.0.0.1", server.rest_port, "cfpb_disputes")
    # Bypasses the client's own checks, as another client might.
    with pytest.raises(client.ServingError, match="400 Bad Request.*zip_code"):
        rest.predict([{"zip_code": "not a zip"}])


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_server_down_is_reported(input_file, capsys, protocol):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    code = client.main(
        [
            "--host",
            "127.0.0.1",
            "--rest-port",
            str(port),
            "--grpc-port",
            str(port),
            "--protocol",
            protocol,
            "--timeout",
            "5",
            "--input",
            str(input_file),
        ]
    )
    assert code == 1
    assert "cannot reach TF Serving" in capsys.readouterr().err


@pytest.mark.parametrize(
    "complaint, message",
    [
        ({"product": "Mortgage", "zip_code": "9411O"}, "zip_code must be a number"),
        ({"product": "Mortgage", "colour": "red"}, "unknown field(s) colour"),
        (
            [
                {
                    **DATES,
                    "product": "Mortgage",
                    "company_response": "In progress",
                    "timely_response": "Yes",
                },
                {**DATES, "product": "Mortgage"},
            ],
            "complaint 2: company_response, timely_response must be given",
        ),
        ({"product": ["Mortgage"]}, "product must be a string"),
        (
            {
                **DATES,
                "product": "Mortgage",
                "company_response": "Closed",
                "timely_response": "Yes",
                "complaint_id": True,
            },
            "complaint_id must be a string or a number",
        ),
        (
            {**DATES, "product": "Mortgage", "company_response": "", "timely_response": "Yes"},
            "company_response must be given",
        ),
        (
            {
                **DATES,
                "date_sent_to_company": "03/04/2015",
                "product": "Mortgage",
                "company_response": "Closed",
                "timely_response": "Yes",
            },
            "date_sent_to_company must be a date written YYYY-MM-DD, got '03/04/2015'",
        ),
    ],
)
def test_bad_input_is_refused_before_sending(tmp_path, capsys, complaint, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(complaint))
    # Port 9 (discard): the request must never be sent, so no server is needed.
    assert client.main(["--rest-port", "9", "--input", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_the_rest_client_does_not_import_tensorflow():
    # A REST client is a light install; only gRPC needs TF's protos.
    code = (
        "import sys, serving.client; "
        "sys.exit('tensorflow' in sys.modules or 'tensorflow_serving' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


def test_command_line_as_users_run_it(served, input_file):
    server, _ = served
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "serving.client",
            "--host",
            "127.0.0.1",
            "--rest-port",
            str(server.rest_port),
            "--input",
            str(input_file),
            "--label",
            "stable",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"model cfpb_disputes version {STABLE}, label stable answered")


def test_the_complaint_id_travels_in_the_example_and_not_to_serving_raw():
    complaint = client.normalize({**COMPLAINTS[1], "complaint_id": 1262356})
    assert complaint["complaint_id"] == "1262356"
    assert "complaint_id" not in client.raw_instance(complaint)
