"""`python -m reporting.summary`: the run summary for any store, read back
after the run (the shared end-to-end run's SQLite store here; the MySQL one
in the team-server tests)."""

import pytest

from reporting import summary

pytestmark = pytest.mark.e2e


def test_prints_the_newest_run_of_the_configured_store(e2e, capsys):
    config, _ = e2e
    assert summary.main(config.as_flags()) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("Run summary: run ")
    assert "  pushed      " in printed
    assert f"  MLMD        {config.metadata_path}" in printed


def test_an_empty_store_says_so_and_exits_1(tmp_path, capsys):
    store = tmp_path / "metadata.sqlite"
    assert summary.main([f"--metadata-path={store}"]) == 1
    assert "No pipeline run recorded in ML Metadata" in capsys.readouterr().out
