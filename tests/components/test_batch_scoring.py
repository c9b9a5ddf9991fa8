"""Batch scoring of the open complaints: the served model resolved from
Model/ModelBlessing/PushedModel artifacts as TFX and this project's Pusher
write them, the ranked CSV, the skipped case, and (end to end) the shared
run's scores.csv against what the served model answers over REST."""

import csv
import json
import random
from pathlib import Path

import pytest
from tfx.types import standard_artifacts

from components import artifact_properties as props
from components import batch_scoring
from data import prepare
from models import signature_names
from pipeline import node_ids
from reporting import summary
from tests.conftest import SPAN_2015, pushed_model_dir

PROBABILITY = signature_names.PREDICTION_KEY
_next_id = iter(range(1, 1000))


def _model():
    model = standard_artifacts.Model()
    model.id = next(_next_id)
    return model


def _blessing(model):
    blessing = standard_artifacts.ModelBlessing()
    blessing.id = next(_next_id)
    blessing.set_int_custom_property("blessed", 1)
    blessing.set_int_custom_property("current_model_id", model.id)
    return blessing


def _push(model, version: str, pushed: bool = True):
    push = standard_artifacts.PushedModel()
    push.id = next(_next_id)
    push.set_int_custom_property(props.PUSHED, int(pushed))
    if pushed:
        push.set_int_custom_property(props.PUSHED_MODEL_ID, model.id)
        push.set_string_custom_property(props.PUSHED_VERSION, version)
    return push


def _served(models, blessings, pushes):
    return batch_scoring.ServedModelStrategy().resolve_artifacts(
        None, {"model": models, "model_blessing": blessings, "pushed_model": pushes}
    )


def test_the_served_model_is_the_newest_push_s():
    first, second, third = _model(), _model(), _model()
    blessings = [_blessing(first), _blessing(second), _blessing(third)]
    # The third model is blessed, but its push was refused: the second is served.
    pushes = [_push(first, "1"), _push(second, "2"), _push(third, "", pushed=False)]
    resolved = _served([first, second, third], blessings, pushes)
    assert resolved == {
        "model": [second],
        "model_blessing": [blessings[1]],
        "pushed_model": [pushes[1]],
    }
    # The first model pushed again (a rollback re-push of an older version).
    pushes.append(_push(first, "3"))
    assert _served([first, second, third], blessings, pushes)["pushed_model"] == [pushes[-1]]


def test_nothing_is_served_before_the_first_push():
    model = _model()
    assert _served([model], [_blessing(model)], []) == {
        "model": [],
        "model_blessing": [],
        "pushed_model": [],
    }


def _scored(complaint_id, probability, response="Closed with explanation"):
    return {prepare.ID_COLUMN: complaint_id, "company_response": response, PROBABILITY: probability}


def test_scores_are_ranked_and_complaints_in_progress_are_listed_unscored():
    rows = [_scored(i, p) for i, p in ((11, 0.2), (12, 0.5), (13, 0.2), (14, 0.1))]
    rows.append(_scored(15, 0.9, response=prepare.OPEN_RESPONSES[0]))
    ranked = batch_scoring.rank(rows, "7")
    assert [(r["complaint_id"], r["rank"]) for r in ranked] == [
        (12, 1),
        (11, 2),  # ties by complaint id
        (13, 3),
        (14, 4),
        (15, ""),
    ]
    assert ranked[-1]["status"] == batch_scoring.NOT_SCORABLE
    assert ranked[-1]["dispute_probability"] == ""  # never scored on a value it never saw
    assert {r["model_version"] for r in ranked[:-1]} == {"7"}
    found = batch_scoring.describe(ranked)
    assert found["scored"] == 4 and found["not_scorable"] == 1
    assert found["top_decile"] == {
        "complaints": 1,
        "lowest_probability": 0.5,
        "mean_probability": 0.5,
    }
    assert found["percentiles"]["0"] == 0.1 and found["percentiles"]["100"] == 0.5
    assert found["mean_probability"] == 0.25


def test_without_a_served_model_scoring_is_skipped_cleanly(tmp_path):
    """TFX's BulkInferrer executor (through this project's) and ScoredComplaints'
    executor, called as TFX's launcher calls them, with no model resolved."""
    open_examples = standard_artifacts.Examples()
    open_examples.uri = str(tmp_path / "open")
    open_examples.set_int_custom_property(props.SPAN, SPAN_2015)
    scored = standard_artifacts.Examples()
    scored.uri = str(tmp_path / "scored")
    batch_scoring._Executor().Do(
        {"examples": [open_examples], "model": [], "model_blessing": []},
        {"output_examples": [scored]},
        {"data_spec": "{}", "model_spec": "{}", "output_example_spec": "{}"},
    )
    assert not Path(scored.uri).exists()  # nothing inferred, nothing written
    scores = batch_scoring.ComplaintScores()
    scores.uri = str(tmp_path / "scores")
    executor = batch_scoring.ScoredComplaints.EXECUTOR_SPEC.executor_class()
    executor.Do(
        {"open_examples": [open_examples], "scored_examples": [scored], "pushed_model": []},
        {"scores": [scores]},
        {},
    )
    record = json.loads(scores.get_string_custom_property(batch_scoring.SCORING_PROPERTY))
    assert record == {"span": SPAN_2015, "skipped": "no model is served yet"}
    text = (Path(scores.uri) / batch_scoring.SCORES_FILE).read_text()
    assert text == ",".join(batch_scoring.SCORE_COLUMNS) + "\n"


@pytest.fixture(scope="module")
def scores(e2e):
    """(config, run output, scores.csv rows, the run summary) of the shared run."""
    config, output = e2e
    run = summary.run_summary(config)
    with open(run.scores_path, newline="") as f:
        return config, output, list(csv.DictReader(f)), run


@pytest.mark.e2e
def test_every_open_complaint_of_the_newest_span_is_in_the_csv(scores):
    config, output, rows, run = scores
    assert run.nodes[node_ids.SCORED_COMPLAINTS].state == "finished"
    span_dir = prepare.span_dir(Path(config.data_root), SPAN_2015)
    with prepare.open_file(span_dir).open(newline="") as f:
        open_rows = {r[prepare.ID_COLUMN]: r for r in csv.DictReader(f)}
    assert sorted(r["complaint_id"] for r in rows) == sorted(open_rows)
    waiting = {i for i, r in open_rows.items() if r["company_response"] in prepare.OPEN_RESPONSES}
    assert {r["complaint_id"] for r in rows if r["status"] == batch_scoring.NOT_SCORABLE} == waiting
    scored = [r for r in rows if r["status"] == batch_scoring.SCORED]
    assert [int(r["rank"]) for r in scored] == list(range(1, len(scored) + 1))
    probabilities = [float(r["dispute_probability"]) for r in scored]
    assert probabilities == sorted(probabilities, reverse=True)
    assert {r["model_version"] for r in scored} == {pushed_model_dir(config).name}
    # Stated in the run's summary: how many, the distribution, the top decile.
    assert run.scoring["scored"] == len(scored) and run.scoring["not_scorable"] == len(waiting)
    assert f"  scored      {len(scored):,} open complaints of span {SPAN_2015}" in output
    assert "top decile" in output and str(run.scores_path) in output


@pytest.mark.e2e
def test_a_sample_of_the_csv_is_what_the_served_model_answers(scores):
    """Asked over TF Serving's REST predict API (serving_raw, through the
    client), as a user would ask about the same complaints."""
    from serving import client
    from standins import tf_serving

    config, _, rows, _ = scores
    version_dir = pushed_model_dir(config)
    model = tf_serving.ServedModel(
        config.model_name, version_dir.parent, [int(version_dir.name)], {}
    )
    server = tf_serving.StandIn(model, rest_port=0, grpc_port=0)
    span_dir = prepare.span_dir(Path(config.data_root), SPAN_2015)
    with prepare.open_file(span_dir).open(newline="") as f:
        asked = {r[prepare.ID_COLUMN]: r for r in csv.DictReader(f)}
    sample = random.Random(34).sample([r for r in rows if r["status"] == batch_scoring.SCORED], 40)
    try:
        answer = client.RestClient("127.0.0.1", server.rest_port, config.model_name).predict(
            [client.normalize(asked[r["complaint_id"]]) for r in sample]
        )
    finally:
        server.stop()
    assert answer.version == int(version_dir.name)
    for row, probability in zip(sample, answer.probabilities, strict=True):
        assert float(row["dispute_probability"]) == pytest.approx(probability, abs=1e-5)
