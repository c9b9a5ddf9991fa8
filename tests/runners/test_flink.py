"""The pipeline's Beam work on a Flink cluster decides what the DirectRunner
decides on the same data (tests/runners/flink_scenario.py, in a network
namespace with only loopback; the table is in docs/flink.md).

One Flink run, every location in the bucket, on a cluster scripts/flink.sh
starts (a JobManager, two TaskManagers, Beam's job server, SDK workers started
by the TaskManagers); one DirectRunner run on local folders; the DirectRunner's
model evaluated again on Flink.
"""

import json
from pathlib import Path

import pytest

from settings.configs import REPO_ROOT
from tests.runners import flink_scenario, loopback

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("flink")
    done = loopback.play("tests.runners.flink_scenario", root, timeout=2400)
    logs = "".join(
        f"\n--- {log}\n" + log.read_text()[-3000:] for log in sorted(root.glob("*/run.log"))
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:] + logs
    parity = json.loads((root / "parity.json").read_text())
    assert parity["exit"] == {"flink": 0, "direct": 0}, logs
    return root


@pytest.fixture(scope="module")
def parity(scenario) -> dict:
    return json.loads((scenario / "parity.json").read_text())


def test_the_components_beam_jobs_ran_on_the_cluster(scenario):
    jobs = json.loads((scenario / "flink_jobs.json").read_text())
    # CsvExampleGen, StatisticsGen, ExampleValidator, Transform, Evaluator (and
    # the re-evaluation): each a Beam job the cluster ran to the end.
    assert len(jobs) >= 5, jobs
    assert {job["state"] for job in jobs} == {"FINISHED"}, jobs


def test_the_flink_run_wrote_its_artifacts_and_model_to_the_bucket(scenario, parity):
    objects = json.loads((scenario / "objects.json").read_text())
    for component in ("CsvExampleGen", "StatisticsGen", "Transform", "Evaluator"):
        assert any(o.startswith(f"flink/pipeline_root/{component}/") for o in objects), component
    assert parity["pushed"] == [1, 1]  # each run pushed its blessed model


def test_statistics_are_the_same(parity):
    for split, compared in parity["statistics"].items():
        assert compared["rows"][0] == compared["rows"][1] > 0, split
        assert compared["differing"] == [], split


def test_schema_anomalies_are_the_same(parity):
    for split, (flink, direct) in parity["anomalies"].items():
        assert flink == direct, split


def test_vocabularies_and_quantile_buckets_are_the_same(parity):
    transform = parity["transform"]
    assert transform["vocabularies"], "no vocabulary compared"
    assert transform["vocabularies_differing"] == []
    assert transform["transformed_rows"][0] == transform["transformed_rows"][1] > 0
    assert transform["transformed_rows_identical"]


def test_the_same_model_gets_the_same_metrics_and_blessing_on_both(parity):
    evaluation = parity["evaluation"]
    on_flink, on_direct = evaluation["metrics"]
    assert on_flink.keys() == on_direct.keys()
    for slice_name, metrics in on_direct.items():
        for name, value in metrics.items():
            assert on_flink[slice_name][name] == pytest.approx(value, rel=1e-6, nan_ok=True), (
                slice_name,
                name,
            )
    assert evaluation["blessed"][0] == evaluation["blessed"][1]


def test_the_scenario_compares_what_docs_flink_md_says():
    page = (REPO_ROOT / "docs" / "flink.md").read_text()
    for test in (
        test_statistics_are_the_same,
        test_schema_anomalies_are_the_same,
        test_vocabularies_and_quantile_buckets_are_the_same,
        test_the_same_model_gets_the_same_metrics_and_blessing_on_both,
    ):
        assert test.__name__ in page, test.__name__
    assert flink_scenario.RELATIVE_TOLERANCE == 1e-9  # docs/flink.md states it
