import argparse

import pytest

from settings import configs
from settings.configs import PipelineConfig


def test_defaults_live_inside_the_checkout():
    config = PipelineConfig()
    for path in (
        config.data_root,
        config.pipeline_root,
        config.metadata_path,
        config.serving_model_dir,
        config.raw_data_dir,
    ):
        assert path.startswith(str(configs.REPO_ROOT)), path


def test_flags_override_environment_which_overrides_defaults():
    env = {"CFPB_TRAIN_STEPS": "500", "CFPB_MIN_AUC": "0.7", "CFPB_ENABLE_CACHE": "false"}
    parser = argparse.ArgumentParser()
    PipelineConfig.add_arguments(parser)
    args = parser.parse_args(
        ["--train-steps", "9", "--span", "1", "--beam-pipeline-args=--direct_num_workers=2 --x=y"]
    )

    config = PipelineConfig.from_args(args, environ=env)

    assert config.train_steps == 9  # flag beats environment
    assert config.min_auc == 0.7  # environment beats default
    assert config.enable_cache is False
    assert config.span == 1
    assert config.beam_pipeline_args == ["--direct_num_workers=2", "--x=y"]
    assert config.batch_size == 64  # default


def test_bad_values_name_the_setting():
    with pytest.raises(ValueError, match="train_steps: 'many' is not a valid int"):
        PipelineConfig.from_env({"CFPB_TRAIN_STEPS": "many"})
    with pytest.raises(ValueError, match="enable_cache"):
        PipelineConfig.from_env({"CFPB_ENABLE_CACHE": "perhaps"})


def test_a_span_is_refused_when_the_pattern_cannot_pick_one():
    # ExampleGen would read every matching file as one span, not the asked one.
    with pytest.raises(ValueError, match=r"setting span: 20150319 .* has no \{SPAN\}"):
        PipelineConfig(input_pattern="*.csv", span=20150319)
    for pattern in ("span-{SPAN}/*.csv", "{SPAN:8}/*.csv"):
        assert PipelineConfig(input_pattern=pattern, span=20150319).span == 20150319
    assert PipelineConfig(input_pattern="*.csv").span is None


def test_bad_flag_exits_with_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        configs.parse_args(argparse.ArgumentParser(prog="runner"), ["--min-auc", "high"])
    assert exit_info.value.code == 2
    assert "min_auc: 'high' is not a valid float" in capsys.readouterr().err


def test_empty_optional_setting_means_unset():
    assert PipelineConfig.from_env({"CFPB_SPAN": ""}).span is None


def test_mysql_password_comes_from_a_file_or_the_environment(tmp_path):
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    assert PipelineConfig(mysql_password_file=str(secret)).mysql_password() == "s3cret"
    assert PipelineConfig().mysql_password({"CFPB_MYSQL_PASSWORD": "env"}) == "env"


def _every_setting_changed() -> PipelineConfig:
    """A config where no setting keeps its default (one value per type)."""
    import dataclasses

    changed = {}
    for field in dataclasses.fields(PipelineConfig):
        value = getattr(PipelineConfig(), field.name)
        kind = configs._base_type(field)
        if kind is bool:
            changed[field.name] = not value
        elif kind is list:
            changed[field.name] = ["--a=1 2", "--b"]  # a value with a space survives
        elif field.name == "dp_microbatches":  # must divide any batch size
            changed[field.name] = 1
        elif field.name == "dp_delta":  # a probability
            changed[field.name] = value / 10
        elif kind in (int, float):
            changed[field.name] = kind((value or 0) + 7)
        elif field.name == "beam_runner":  # one of a few names
            changed[field.name] = next(r for r in configs.BEAM_RUNNERS if r != value)
        elif field.name == "input_pattern":  # must keep its span placeholder
            changed[field.name] = f"/somewhere/{configs.SPAN_SPEC}/*.csv"
        else:
            changed[field.name] = f"/somewhere/{field.name}"
    return PipelineConfig(**changed)


def test_flags_and_environment_reproduce_a_config_exactly():
    config = _every_setting_changed()
    parser = argparse.ArgumentParser()
    PipelineConfig.add_arguments(parser)

    assert PipelineConfig.from_args(parser.parse_args(config.as_flags()), environ={}) == config
    assert PipelineConfig.from_env(config.as_env()) == config
    assert PipelineConfig().as_flags() == [] and PipelineConfig().as_env() == {}
    assert PipelineConfig(span=None, enable_cache=False).as_flags() == ["--no-enable-cache"]


def test_every_setting_belongs_to_exactly_one_group_by_reader():
    import dataclasses

    names = [f.name for group in configs.SETTINGS_GROUPS for f in dataclasses.fields(group)]
    assert len(names) == len(set(names))
    assert set(names) == {f.name for f in dataclasses.fields(PipelineConfig)}


def test_the_graph_settings_are_only_what_shapes_the_graph():
    import dataclasses

    config = _every_setting_changed()
    graph = config.graph()
    assert type(graph) is configs.GraphSettings
    assert dataclasses.asdict(graph) == {
        f.name: getattr(config, f.name) for f in dataclasses.fields(configs.GraphSettings)
    }
    assert not hasattr(graph, "metadata_path") and not hasattr(graph, "airflow_schedule")


def test_airflow_recompiles_for_graph_settings_and_for_nothing_else():
    import dataclasses

    from runners import airflow_runner

    base = PipelineConfig()
    digest = airflow_runner.fingerprint(base)["settings"]
    graph_names = {f.name for f in dataclasses.fields(configs.GraphSettings)}
    changed = _every_setting_changed()
    for field in dataclasses.fields(PipelineConfig):
        if field.name == "schema_path":  # hashed by content: another file must exist
            continue
        one = dataclasses.replace(base, **{field.name: getattr(changed, field.name)})
        moved = airflow_runner.fingerprint(one)["settings"] != digest
        assert moved == (field.name in graph_names), field.name


@pytest.mark.parametrize(
    "values, refused",
    [
        ({"dp_noise_multiplier": 0.0}, "setting dp_noise_multiplier: 0.0 must be positive"),
        ({"dp_l2_norm_clip": -1.0}, "setting dp_l2_norm_clip: -1.0 must be positive"),
        ({"max_epsilon": 0.0}, "setting max_epsilon: 0.0 must be positive"),
        ({"dp_microbatches": 5}, "setting dp_microbatches: 5 does not divide the batch size 64"),
        ({"dp_microbatches": 0}, "setting dp_microbatches: 0 does not divide"),
        ({"dp_delta": 1.0}, "setting dp_delta: 1.0 must be between 0 and 1"),
        ({"validate_every_steps": 0}, "setting validate_every_steps: 0 must be positive"),
        ({"early_stopping_patience": -1}, "setting early_stopping_patience: -1 must be 0"),
    ],
)
def test_bad_training_settings_are_refused_with_the_setting_named(values, refused):
    with pytest.raises(ValueError, match=refused):
        PipelineConfig(**values)
    # The same line on the command line, before anything runs.
    with pytest.raises(SystemExit):
        configs.parse_args(
            argparse.ArgumentParser(prog="runner"),
            [f"{configs.flag(name)}={value}" for name, value in values.items()],
        )


def test_private_training_settings_round_trip_through_flags_and_environment():
    config = PipelineConfig(
        private_training=True,
        dp_noise_multiplier=0.8,
        dp_l2_norm_clip=1.5,
        dp_microbatches=32,
        dp_delta=1e-6,
        max_epsilon=4.0,
    )
    assert config.as_flags() == [
        "--private-training",
        "--dp-noise-multiplier=0.8",
        "--dp-l2-norm-clip=1.5",
        "--dp-microbatches=32",
        "--dp-delta=1e-06",
        "--max-epsilon=4.0",
    ]
    parser = argparse.ArgumentParser()
    PipelineConfig.add_arguments(parser)
    assert PipelineConfig.from_args(parser.parse_args(config.as_flags()), environ={}) == config
    assert PipelineConfig.from_env(config.as_env()) == config
