"""`python -m reporting.summary`: the run summary for any store, read back
after the run (the shared end-to-end run's SQLite store here; the MySQL one
in the team-server tests)."""

import pytest

from reporting import summary


@pytest.mark.e2e
def test_prints_the_newest_run_of_the_configured_store(e2e, capsys):
    config, _ = e2e
    assert summary.main(config.as_flags()) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("Run summary: run ")
    assert "  pushed      " in printed
    assert f"  MLMD        {config.metadata_path}" in printed
    # Fewer steps than one validation interval: nothing to stop early on.
    assert f"  trained     {config.train_steps} steps, kept the last (validation loss " in printed


def _summary(**fields) -> summary.RunSummary:
    empty = dict.fromkeys(
        (
            "run_id",
            "validation_report",
            "auc_overall",
            "auc_worst_slice",
            "blessed",
            "pushed_path",
            "pushed_version",
        )
    )
    return summary.RunSummary(
        **empty,
        nodes={},
        split_rows={},
        window_spans=[],
        anomalies={},
        blessing_reason="",
        push_reused_version=False,
        metadata_location="",
        **fields,
    )


def test_a_model_kept_from_before_its_last_step_says_which_step_and_why():
    stopped = _summary(
        training={
            "steps": 500,
            "kept_step": 200,
            "kept_validation_loss": 0.47691,
            "calibration": {"scale": 1.104, "shift": 0.2149, "rows": 6400},
        }
    )
    assert stopped.training_text == (
        "500 steps, kept the weights of step 200: the lowest validation loss (0.4769); "
        "later steps only overfit; calibrated on 6,400 validation rows (Platt: scale 1.10, "
        "shift +0.21)"
    )
    assert _summary().training_text is None  # a model recorded before training was


def test_an_empty_store_says_so_and_exits_1(tmp_path, capsys):
    store = tmp_path / "metadata.sqlite"
    assert summary.main([f"--metadata-path={store}"]) == 1
    assert "No pipeline run recorded in ML Metadata" in capsys.readouterr().out


@pytest.mark.e2e
def test_a_named_run_is_summarized_even_when_a_newer_one_exists(e2e, tmp_path, capsys):
    import dataclasses
    import shutil

    from tests.conftest import another_run_starts

    source, output = e2e
    config = dataclasses.replace(source, metadata_path=str(tmp_path / "metadata.sqlite"))
    shutil.copy(source.metadata_path, config.metadata_path)
    first = output[output.index("Run summary: run ") :].split()[3].rstrip(",")
    another_run_starts(config, "a-newer-run")
    assert summary.main([*config.as_flags(), f"--run-id={first}"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"Run summary: run {first}, 16 components")
    assert summary.main([*config.as_flags(), "--run-id=no-such-run"]) == 2
    assert "no run 'no-such-run'" in capsys.readouterr().err


@pytest.mark.e2e
def test_a_pusher_that_has_not_decided_is_not_reported_as_a_refusal(e2e):
    """What another process reads while the run goes on: a running Pusher has
    pushed nothing yet, and a failed one refused nothing."""
    import dataclasses

    from pipeline import node_ids

    config, _ = e2e
    done = summary.run_summary(config)

    def with_pusher(state: str) -> str:
        nodes = {**done.nodes}
        nodes[node_ids.PUSHER] = dataclasses.replace(nodes[node_ids.PUSHER], state=state)
        return dataclasses.replace(done, nodes=nodes, pushed_path=None).render()

    assert "  pushed      not yet: the Pusher is running\n" in with_pusher("running")
    # What is served is read from the serving folder: the shared run's push.
    served = f"version {done.served_version} in {config.model_dir} stays the served one"
    assert done.served_version is not None
    assert f"  pushed      nothing: the Pusher is FAILED; {served}" in with_pusher("FAILED")
    assert "  pushed      nothing: the model was not blessed;" in with_pusher("finished")
