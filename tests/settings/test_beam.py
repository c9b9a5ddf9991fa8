import argparse
import socket
import time

import pytest

from settings import beam, configs
from settings.configs import GraphSettings, PipelineConfig


def test_direct_runner_passes_no_options_so_tfx_stages_nothing():
    # TFX builds and stages an sdist of itself whenever the options are
    # non-empty (tfx/utils/dependency_utils.py): the laptop default gives none.
    assert beam.pipeline_args(GraphSettings()) == []


def test_user_options_come_last_so_they_win():
    config = GraphSettings(beam_runner="flink", beam_pipeline_args=["--parallelism=1"])
    args = beam.pipeline_args(config)
    assert args[-1] == "--parallelism=1"
    assert "--parallelism=2" in args  # the derived one, overridden by Beam's parser


def test_flink_options_name_the_job_server_and_the_workers_environment():
    config = GraphSettings(
        beam_runner="flink",
        beam_job_endpoint="10.0.0.5:8099",
        beam_parallelism=4,
        beam_sdk_boot="/opt/beam/boot",
    )
    args = beam.pipeline_args(config)
    assert "--runner=PortableRunner" in args
    assert "--job_endpoint=10.0.0.5:8099" in args
    assert "--parallelism=4" in args
    assert "--environment_type=PROCESS" in args
    assert "--environment_options=process_command=/opt/beam/boot" in args
    assert beam.job_endpoint(args) == "10.0.0.5:8099"


def test_flink_options_keep_tfx_from_staging_itself():
    from tfx.utils import dependency_utils

    args = beam.pipeline_args(GraphSettings(beam_runner="flink"))
    # Unchanged: TFX found the workers' environment named and added no
    # --extra_package (which the boot program would pip-install).
    assert dependency_utils.make_beam_dependency_flags(args) == args


def test_flink_options_parse_as_beam_options():
    from apache_beam.options.pipeline_options import PipelineOptions, PortableOptions

    args = beam.pipeline_args(GraphSettings(beam_runner="flink", beam_sdk_boot="/b/boot"))
    options = PipelineOptions(args).view_as(PortableOptions)
    assert options.environment_type == "PROCESS"
    assert options.lookup_environment_option("process_command") == "/b/boot"


def test_an_unknown_runner_is_refused_by_the_parser(capsys):
    parser = argparse.ArgumentParser()
    with pytest.raises(SystemExit):
        configs.parse_args(parser, ["--beam-runner", "spark"], environ={})
    assert "beam_runner: 'spark' is not one of direct, flink" in capsys.readouterr().err


def test_the_runner_family_reads_the_environment():
    config = PipelineConfig.from_env(
        {"CFPB_BEAM_RUNNER": "flink", "CFPB_BEAM_JOB_ENDPOINT": "127.0.0.1:1"}
    )
    assert beam.job_endpoint(beam.pipeline_args(config)) == "127.0.0.1:1"


def test_a_stopped_job_server_is_one_line_within_seconds():
    with socket.socket() as probe:  # a loopback port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = beam.pipeline_args(
        GraphSettings(beam_runner="flink", beam_job_endpoint=f"127.0.0.1:{port}")
    )
    started = time.monotonic()
    with pytest.raises(beam.EngineUnreachable) as error:
        beam.check_reachable(args)
    assert time.monotonic() - started < 5
    message = str(error.value)
    assert f"127.0.0.1:{port}" in message and "--beam-job-endpoint" in message
    assert "\n" not in message


def test_a_listening_job_server_and_the_direct_runner_pass_the_check():
    beam.check_reachable(beam.pipeline_args(GraphSettings()))  # nothing to reach
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        endpoint = f"127.0.0.1:{server.getsockname()[1]}"
        beam.check_reachable(
            beam.pipeline_args(GraphSettings(beam_runner="flink", beam_job_endpoint=endpoint))
        )
