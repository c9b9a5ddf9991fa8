"""`python -m serving.model_config` on real pushed versions."""

import re
import shutil
from pathlib import Path

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving import model_config
from tests.conftest import pushed_model_dir

pytestmark = pytest.mark.e2e


@pytest.fixture
def pushed_two(e2e, tmp_path):
    """A serving directory with the pushed model as two versions, 100 and 200."""
    model_dir = tmp_path / "serving_model" / e2e[0].model_name
    for version in (100, 200):
        shutil.copytree(pushed_model_dir(e2e[0]), model_dir / str(version))
    return model_dir


def _read(path: Path):
    return text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())


def _argv(model_dir, output, *extra):
    return [
        "--serving-model-dir",
        str(model_dir.parent),
        "--model-name",
        model_dir.name,
        "--output",
        str(output),
        *extra,
    ]


def test_labels_the_newest_canary_and_the_previous_stable(pushed_two, tmp_path, capsys):
    output = tmp_path / "models.config"
    assert model_config.main(_argv(pushed_two, output)) == 0
    (model,) = _read(output).model_config_list.config
    assert model.name == pushed_two.name
    assert model.base_path == f"/models/{pushed_two.name}"
    assert list(model.model_version_policy.specific.versions) == [100, 200]
    assert dict(model.version_labels) == {"stable": 100, "canary": 200}
    assert "stable -> 100, canary -> 200" in capsys.readouterr().out


def test_promotion_and_host_base_path(pushed_two, tmp_path):
    output = tmp_path / "models.config"
    argv = _argv(pushed_two, output, "--stable", "200", "--base-path", str(pushed_two))
    assert model_config.main(argv) == 0
    (model,) = _read(output).model_config_list.config
    assert dict(model.version_labels) == {"stable": 200, "canary": 200}
    assert list(model.model_version_policy.specific.versions) == [200]
    assert model.base_path == str(pushed_two)


def test_one_version_is_both_stable_and_canary(pushed_two, tmp_path):
    shutil.rmtree(pushed_two / "100")
    output = tmp_path / "models.config"
    assert model_config.main(_argv(pushed_two, output)) == 0
    assert dict(_read(output).model_config_list.config[0].version_labels) == {
        "stable": 200,
        "canary": 200,
    }


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("no_versions", "holds no version folders"),
        ("missing_dir", "does not exist"),
        ("unknown_label_version", "--stable 150: not a pushed version"),
        ("half_copied_newest", "version 300 cannot be served: .*no saved_model.pb"),
    ],
)
def test_refuses_to_write_a_config_that_cannot_serve(
    pushed_two, tmp_path, capsys, breakage, message
):
    extra = []
    model_dir = pushed_two
    if breakage == "no_versions":
        for version in ("100", "200"):
            shutil.rmtree(pushed_two / version)
    elif breakage == "missing_dir":
        model_dir = pushed_two.parent / "other_model"
    elif breakage == "unknown_label_version":
        extra = ["--stable", "150"]
    else:
        shutil.copytree(pushed_two / "200" / "variables", pushed_two / "300" / "variables")
    output = tmp_path / "models.config"
    assert model_config.main(_argv(model_dir, output, *extra)) == 1
    assert not output.exists()
    assert re.search(message, capsys.readouterr().err)


def test_the_labels_a_written_config_serves_are_read_back(tmp_path):
    """What the MLflow mirror's aliases follow (tracking/mlflow_mirror.py)."""
    written = tmp_path / "models.config"
    config = model_config.build_config(
        "cfpb_disputes", "/models/cfpb_disputes", {"stable": 7, "canary": 9}
    )
    written.write_text(text_format.MessageToString(config))
    assert model_config.read_labels(written, "cfpb_disputes") == {"stable": 7, "canary": 9}
    assert model_config.read_labels(tmp_path / "absent.config", "cfpb_disputes") is None
    with pytest.raises(model_config.ModelConfigError, match="no model named 'other'"):
        model_config.read_labels(written, "other")
