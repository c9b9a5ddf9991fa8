"""bench.faults' choices and readings, without running a pipeline (the cells
themselves run in tests/runners/test_faults.py and with python -m bench.faults)."""

import argparse

import pytest

from bench import faults
from pipeline import node_ids

SERVERS = {
    "CFPB_MYSQL_HOST": "127.0.0.1",
    "CFPB_MYSQL_PORT": "3306",
    "CFPB_MYSQL_USER": "mlmd",
    "CFPB_MYSQL_PASSWORD_FILE": "/dev/null",
    "CFPB_BUCKET": "cfpb",
}


def test_every_default_cell_is_a_known_fault_at_a_node_that_works():
    assert faults.cells(",".join(faults.DEFAULT_CELLS)) == faults.DEFAULT_CELLS
    assert {c.split(":")[1] for c in faults.DEFAULT_CELLS if c.startswith("kill:")} == set(
        faults.EXECUTING_NODES
    )
    assert not set(faults.EXECUTING_NODES) & set(node_ids.RESOLVERS)


@pytest.mark.parametrize("cell", ["kill:Trainr", "flood:Trainer", "Trainer"])
def test_a_cell_with_a_typo_is_refused_naming_the_choices(cell):
    with pytest.raises(argparse.ArgumentTypeError, match="the node one of ImportSchemaGen"):
        faults.cells(cell)


def test_each_fault_runs_where_it_can_strike(tmp_path):
    args = argparse.Namespace(work_dir=tmp_path, rows=100, train_steps=5)
    sqlite = faults.cell_config("kill", "Trainer", tmp_path / "k", args, SERVERS)
    assert not sqlite.uses_mysql
    mariadb = faults.cell_config("mariadb", "Trainer", tmp_path / "m", args, SERVERS)
    assert mariadb.uses_mysql and mariadb.mysql_database == "mlmd_mariadb_trainer"
    disk = faults.cell_config("disk", "Trainer", tmp_path / "d", args, SERVERS)
    assert disk.pipeline_root == str(tmp_path / "d" / "disk" / "pipeline_root")
    bucket = faults.cell_config("objectstore", "Trainer", tmp_path / "o", args, SERVERS)
    assert bucket.pipeline_root.startswith("gs://cfpb/faults/o/") and bucket.uses_mysql
    assert bucket.serving_model_dir.startswith("gs://cfpb/")


def test_the_message_is_the_failure_line_else_the_last_line():
    failed = "Running\n  > Trainer ...\n  x Trainer failed after 3s: No space\nRun stopped\n"
    assert faults._message(failed) == "x Trainer failed after 3s: No space"
    assert faults._message("a\nb\n\n") == "b"
    assert faults._ran("Run summary: run 1, 9 components (2 ran, 7 cached)\n") == "2 ran, 7 cached"


def test_a_cells_runs_take_their_settings_from_flags_only():
    # env.sh of the servers sets CFPB_MYSQL_*: an SQLite cell run with them
    # would write to MariaDB while the bench reads the SQLite file.
    env = {"CFPB_MYSQL_HOST": "127.0.0.1", "CFPB_SERVICES_DIR": "/s", "PATH": "/bin"}
    assert faults.without_settings(env) == {"CFPB_SERVICES_DIR": "/s", "PATH": "/bin"}
