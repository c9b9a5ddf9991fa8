"""The MLflow mirror against a real MLflow server (scripts/mlflow.sh, the
server's own venv): the shared e2e run's store copied, then two more runs
through the Beam runner with a tracking URI (a push, then a refusal), the
registry, a rollback, a second mirror, and the UI in Chromium."""

from __future__ import annotations

import dataclasses
import datetime
import io
import os
import shutil
import subprocess
import time

import pytest

from reporting import run_history
from tests.conftest import REPO_ROOT, run_beam_runner, sourced_env
from tracking import mlflow_mirror

pytestmark = pytest.mark.e2e

SCRIPT = str(REPO_ROOT / "scripts" / "mlflow.sh")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A tracking server on loopback, stopped when the module ends."""
    env = {**os.environ, "CFPB_MLFLOW_DIR": str(tmp_path_factory.mktemp("mlflow"))}
    started = subprocess.run([SCRIPT, "start"], env=env, capture_output=True, text=True)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield sourced_env(f"{env['CFPB_MLFLOW_DIR']}/env.sh", env)["CFPB_MLFLOW_TRACKING_URI"]
    finally:
        subprocess.run([SCRIPT, "stop"], env=env, check=True)


@pytest.fixture(scope="module")
def runs(e2e, server, tmp_path_factory):
    """The e2e store (one run, one push) copied, then a second model pushed
    and a third refused (AUC floor 0.99), each run mirroring as it ends.
    (config, outputs of the two runs)."""
    config, _ = e2e
    root = tmp_path_factory.mktemp("mirrored")
    shutil.copy(config.metadata_path, root / "metadata.sqlite")
    shutil.copytree(config.serving_model_dir, root / "serving_model")
    config = dataclasses.replace(
        config,
        metadata_path=str(root / "metadata.sqlite"),
        serving_model_dir=str(root / "serving_model"),
        report_dir=str(root / "reports"),
        mlflow_tracking_uri=server,
    )
    outputs = []
    for overrides in (
        # Another model (more steps), blessed whatever its AUC: a second push.
        {"train_steps": config.train_steps + 10, "min_auc": 0.0, "max_auc_regression": 1.0},
        # The same model, an AUC floor it cannot pass: refused, nothing pushed.
        {"train_steps": config.train_steps + 10, "min_auc": 0.99},
    ):
        code, output = run_beam_runner(dataclasses.replace(config, **overrides).as_flags())
        assert code == 0, output
        outputs.append(output)
    return config, outputs


def _history(config):
    from settings import metadata

    return run_history.history(metadata.connection_config(config), config.pipeline_name)


def _client(server):
    return mlflow_mirror.client(server)


def _runs(client, config):
    experiment = client.get_experiment_by_name(config.pipeline_name)
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


def test_each_run_is_mirrored_as_it_ends_and_the_first_is_caught_up(runs, server):
    config, outputs = runs
    # The e2e run was never mirrored: the next run's mirror catches it up.
    assert "  mlflow      2 run(s) added" in outputs[0]
    assert "  mlflow      1 run(s) added" in outputs[1]
    assert "(2 mirrored before)" in outputs[1]
    mirrored = _runs(_client(server), config)
    history = _history(config)
    assert [r.data.tags["pipeline_run_id"] for r in mirrored] == [h.run_id for h in history]
    assert [r.info.run_name for r in mirrored] == [h.run_id for h in history]
    assert all(r.info.status == "FINISHED" for r in mirrored)


def test_a_run_carries_its_settings_metrics_and_files(runs, server):
    from reporting import summary

    config, _ = runs
    client = _client(server)
    pushed, refused = _runs(client, config)[1:]
    facts = summary.run_summary(config, run_id=pushed.info.run_name)
    assert pushed.data.params["learning_rate"] == str(config.learning_rate)
    assert pushed.data.params["train_args_steps"] == str(config.train_steps + 10)
    assert pushed.data.metrics["eval/overall/auc"] == pytest.approx(facts.auc_overall.value)
    assert pushed.data.metrics["rows/train"] == facts.split_rows["train"]
    assert pushed.data.metrics["seconds/Trainer"] > 0
    assert "privacy/epsilon" not in pushed.data.metrics  # trained without DP
    assert pushed.data.tags["pushed_version"] == facts.pushed_version
    assert pushed.data.tags["artifact_uri.model"].startswith(config.pipeline_root)
    assert (
        set(pushed.data.tags["mlmd.execution_ids"])
        and pushed.data.tags["mlmd.pipeline_run_context_id"].isdigit()
    )
    files = {
        f.path
        for folder in ("report", "schema", "anomalies", "model_card")
        for f in client.list_artifacts(pushed.info.run_id, folder)
    }
    assert f"report/{pushed.info.run_name}.html" in files
    assert {"schema/schema.pbtxt", "anomalies/anomalies.json"} <= files
    assert any(f.startswith("model_card/") for f in files)
    assert refused.data.tags["blessed"] == "no"
    assert "fails lower bound 0.99" in refused.data.tags["blessing_reason"]
    assert "pushed_version" not in refused.data.tags


def test_the_registry_has_each_pushed_version_with_tf_servings_labels(runs, server):
    config, _ = runs
    client = _client(server)
    pushed = [h.version for h in _history(config) if h.push == run_history.NEW]
    assert len(pushed) == 2
    versions = client.search_model_versions(f"name = '{config.model_name}'")
    by_serving = {v.tags["serving_version"]: v for v in versions}
    assert sorted(by_serving) == sorted(pushed)
    aliases = client.get_registered_model(config.model_name).aliases
    # No models.config written yet: canary = newest push, stable = the one before.
    assert aliases == {
        "canary": by_serving[pushed[1]].version,
        "stable": by_serving[pushed[0]].version,
    }
    # A local version folder is copied into its run (MLflow refuses a local source).
    assert by_serving[pushed[0]].source.endswith("/serving_model")
    assert any(
        f.path.endswith("saved_model.pb")
        for f in client.list_artifacts(by_serving[pushed[0]].run_id, "serving_model")
    )


def test_a_rollback_moves_the_alias_back_and_mirroring_again_adds_nothing(runs, server, tmp_path):
    from serving import model_config

    config, _ = runs
    client = _client(server)
    older, newer = [h.version for h in _history(config) if h.push == run_history.NEW]
    served = tmp_path / "models.config"
    assert (
        model_config.main(
            [
                "--output",
                str(served),
                "--serving-model-dir",
                config.serving_model_dir,
                "--canary",
                older,
            ]
        )
        == 0
    )
    before = (
        len(_runs(client, config)),
        len(client.search_model_versions(f"name = '{config.model_name}'")),
    )
    result = mlflow_mirror.mirror(config, served_labels_file=served)
    assert result.added == [] and result.versions == [] and result.present == 3
    assert result.aliases == {"canary": older, "stable": older}
    by_serving = {
        v.tags["serving_version"]: v.version
        for v in client.search_model_versions(f"name = '{config.model_name}'")
    }
    assert client.get_registered_model(config.model_name).aliases == {
        "canary": by_serving[older],
        "stable": by_serving[older],
    }
    # --since: the runs started before that day are left out (none added, none counted).
    tomorrow = datetime.date.today() + datetime.timedelta(days=1)
    later = mlflow_mirror.mirror(config, since=tomorrow, served_labels_file=served)
    assert (later.added, later.present) == ([], 0)
    after = (len(_runs(client, config)), len(by_serving))
    assert before == after == (3, 2)
    assert newer in by_serving  # rolled back, not forgotten


def test_an_unreachable_server_is_said_once_and_the_run_stands(runs, tmp_path):
    config, _ = runs
    closed = dataclasses.replace(config, mlflow_tracking_uri="http://127.0.0.1:9")
    with pytest.raises(mlflow_mirror.MirrorError, match="127.0.0.1:9 does not answer"):
        mlflow_mirror.mirror(closed)
    output = io.StringIO()
    mlflow_mirror.mirror_after_run(closed, None, None, output)
    assert output.getvalue().count("\n") == 1
    assert output.getvalue().startswith("  mlflow      not mirrored: http://127.0.0.1:9 does not")
    assert (
        mlflow_mirror.main(
            ["--mlflow-tracking-uri", "http://127.0.0.1:9", "--metadata-path", config.metadata_path]
        )
        == 1
    )


def test_the_ui_shows_the_mirrored_run_and_the_model_with_its_alias(runs, server):
    from tests.browser import Browser

    config, _ = runs
    client = _client(server)
    run = _runs(client, config)[-1]
    browser = Browser()
    try:
        browser.open(f"{server}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}")
        assert _text_appears(browser, "eval/overall/auc"), browser.evaluate(
            "document.body.innerText"
        )[:2000]
        assert run.info.run_name in browser.evaluate("document.body.innerText")
        # The UI routes by the URL's fragment: no new page load to wait for.
        browser.evaluate(f"location.hash = '#/models/{config.model_name}'")
        assert _text_appears(browser, "canary") and _text_appears(browser, "stable"), (
            browser.evaluate("document.body.innerText")[:2000]
        )
        # Nothing beyond the server: no telemetry, fonts or scripts from elsewhere.
        foreign = [u for u in browser.requested_urls() if not u.startswith((server, "data:"))]
        assert foreign == []
    finally:
        browser.close()


def _text_appears(browser, text: str, seconds: float = 60) -> bool:
    """The UI renders after its API calls: wait for the text in the DOM."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if text in (browser.evaluate("document.body.innerText") or ""):
            return True
        time.sleep(0.5)
    return False
