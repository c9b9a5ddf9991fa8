"""Every command reads its settings through the one parser (settings/configs.py):
its settings flags are the config's, and the same CFPB_* variables set them."""

import contextlib
import importlib
import io

import pytest

# (module, arguments before --help, the settings it offers as flags)
COMMANDS = [
    ("data.prepare", [], {"--raw-data-dir", "--data-root", "--max-rows-per-span"}),
    ("data.schema", ["diff"], {"--data-root", "--schema-path"}),
    ("serving.model_config", [], {"--serving-model-dir", "--model-name"}),
    ("serving.client", [], {"--model-name"}),
    ("feedback.logging_proxy", [], {"--prediction-log-prefix"}),
    ("feedback.replay", [], {"--model-name"}),
    ("feedback.skew", [], {"--prediction-log-prefix", "--metadata-path"}),
    ("feedback.join", [], {"--prediction-log-prefix", "--raw-data-dir"}),
    ("reporting.summary", [], {"--metadata-path", "--pipeline-name"}),
    ("reporting.report", [], {"--report-dir", "--metadata-path"}),
    ("reporting.run_history", [], {"--metadata-path"}),
    ("runners.node_launcher", [], {"--metadata-grpc"}),
    ("runners.beam_runner", [], {"--train-steps", "--metadata-path", "--raw-data-dir"}),
]
SETTINGS_HEADER = "read from the environment as CFPB_<NAME>"


def _help(module: str, before: list[str]) -> str:
    main = importlib.import_module(module).main
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        main([*before, "--help"])
    assert exit_.value.code == 0
    return out.getvalue()


@pytest.mark.parametrize(("module", "before", "flags"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_settings_flags_come_from_the_one_parser(module, before, flags):
    text = _help(module, before)
    assert SETTINGS_HEADER in text
    for flag in flags:
        assert flag in text, flag


def test_a_command_reads_its_settings_from_the_environment(tmp_path, monkeypatch, capsys):
    """The model_config command takes its model folder from CFPB_* like every runner."""
    from serving import model_config

    monkeypatch.setenv("CFPB_SERVING_MODEL_DIR", str(tmp_path))
    monkeypatch.setenv("CFPB_MODEL_NAME", "from_env")
    (tmp_path / "from_env" / "7").mkdir(parents=True)  # a version folder, but no model in it
    assert model_config.main(["--output", str(tmp_path / "models.config")]) == 1
    assert str(tmp_path / "from_env" / "7") in capsys.readouterr().err
