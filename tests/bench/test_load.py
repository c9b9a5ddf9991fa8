"""bench.load's runs and table, without running a pipeline (python -m bench.load runs them)."""

import argparse

from bench import load

SERVERS = {
    "CFPB_MYSQL_HOST": "127.0.0.1",
    "CFPB_MYSQL_PORT": "3306",
    "CFPB_MYSQL_USER": "mlmd",
    "CFPB_MYSQL_PASSWORD_FILE": "/dev/null",
}


def test_runs_of_a_level_are_separate_pipelines_on_one_database(tmp_path):
    args = argparse.Namespace(work_dir=tmp_path, rows=100, train_steps=5)
    configs = load.level_configs(args, 3, SERVERS, tmp_path / "spans")
    assert len({c.pipeline_name for c in configs}) == 3  # one pipeline's runs would be refused
    assert len({c.pipeline_root for c in configs}) == 3
    assert {c.mysql_database for c in configs} == {load.DATABASE}
    assert {c.data_root for c in configs} == {str(tmp_path / "spans")}


def test_store_errors_are_counted_by_what_the_server_says():
    said = "ERROR 1213 (40001): Deadlock found when trying to get lock\nstatus: ABORTED"
    found = {name for name, pattern in load.STORE_ERRORS.items() if pattern.search(said)}
    assert found == {"deadlock", "aborted"}


def test_the_table_has_a_row_per_level():
    level = {
        "count": 2,
        "runs": [{"code": 0, "wall": 50.0}, {"code": 1, "wall": 60.0}],
        "wall": 60.0,
        "before": 22.0,
        "lowest": 20.5,
        "left_running": 0,
        "completed": [14, 14],
        "served": [1, 0],
        "errors": {"deadlock": 2},
        "max_connections_used": "9",
    }
    args = argparse.Namespace(rows=3000, train_steps=150)
    row = load.render([level], args, ["--counts", "2"]).splitlines()[-1]
    assert row.startswith("| 2 | 1/2 | 60 | 30 | 60 | 20.5 of 22.0 | 0 | [14] | [0, 1] |")
    assert "deadlock 2" in row
