"""The feedback loop's traffic, made once for the serving and data tests.

The shared run's pushed model behind the serving stand-in, the logging proxy
(feedback/logging_proxy.py) in front of it logging every request, and real
complaints replayed through the client (feedback/replay.py) over gRPC:
- `earlier`: the first complaints of the 2014 export, as they arrived (open
  complaints included): another period than training. The export was read
  within five weeks of them, so it holds none of their outcomes final;
- `matured`: the complaints the 2015 export received up to 2015-01-20, as
  they arrived, with the outcomes the whole export records final for them
  (learned from a later export, as a user learns them);
- `training`: the complaints of the shared run's newest span (2015), the
  span its training statistics describe.
"""

import dataclasses
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from data import prepare
from feedback import logging_proxy, prediction_log, replay
from standins import tf_serving
from tests.conftest import SPAN_2015, export_received_through, pushed_model_dir

EARLIER_EXPORT = prepare.RAW_DIR / "complaints_2014-10_2014-11.csv.gz"
EARLIER_ROWS = 600
LATER_EXPORT = prepare.RAW_DIR / "complaints_2015-01_2015-03.csv.gz"
MATURED_THROUGH = "2015-01-20"
REPLAY_BATCH = 25


def _replay(proxy_port: int, export: Path, rows: int | None, outcomes: Path | None) -> None:
    argv = [str(export), "--host", "127.0.0.1", "--port", str(proxy_port)]
    argv += ["--batch", str(REPLAY_BATCH)]
    if rows:
        argv += ["--rows", str(rows)]
    if outcomes:
        argv += ["--outcomes-out", str(outcomes), "--outcomes-from", str(LATER_EXPORT)]
    assert replay.main(argv) == 0


@pytest.fixture(scope="session")
def feedback_traffic(e2e, tmp_path_factory):
    config = e2e[0]
    root = tmp_path_factory.mktemp("feedback")
    version_dir = pushed_model_dir(config)
    model_dir = root / "serving_model" / config.model_name
    shutil.copytree(version_dir, model_dir / version_dir.name)
    model = tf_serving.ServedModel(config.model_name, model_dir, [int(version_dir.name)], {})
    server = tf_serving.StandIn(model, rest_port=0, grpc_port=0)
    traffic = SimpleNamespace(
        config=config, root=root, version=int(version_dir.name), server=server
    )
    training_span = prepare.span_dir(Path(config.data_root), SPAN_2015) / prepare.SPAN_FILE_NAME
    matured_export = export_received_through(MATURED_THROUGH, root / "matured.csv")
    for name, export, rows in (
        ("earlier", EARLIER_EXPORT, EARLIER_ROWS),
        ("matured", matured_export, EARLIER_ROWS),
        ("training", training_span, None),
    ):
        prefix = str(root / "logs" / name / "predictions")
        logger = prediction_log.RequestLogger(prediction_log.logging_config(prefix, 1.0))
        proxy = logging_proxy.LoggingProxy(f"127.0.0.1:{server.grpc_port}", logger, port=0)
        outcomes = root / f"{name}-outcomes.csv" if name == "matured" else None
        try:
            _replay(proxy.port, export, rows, outcomes)
        finally:
            proxy.stop()
        setattr(
            traffic,
            name,
            SimpleNamespace(
                prefix=prefix,
                export=export,
                outcomes=outcomes,
                logged=logger.logged,
                config=dataclasses.replace(
                    config,
                    prediction_log_prefix=prefix,
                    pipeline_root=str(root / name / "pipeline_root"),
                    raw_data_dir=str(root / name / "raw"),
                ),
            ),
        )
    yield traffic
    server.stop()
