"""The object-store benchmark: its section of the benchmarks page, kept when
bench.run rewrites the page, and a smoke run on a tiny setting (real runs in
a loopback-only namespace; it asserts what was measured, never a timing)."""

import re

import pytest

from bench import object_store, run


def test_a_section_is_replaced_in_place_and_survives_a_rewrite_of_the_page(tmp_path):
    page = tmp_path / "benchmarks.md"
    page.write_text("# Benchmarks\n\nwritten by bench.run\n")
    run.publish_section("## Store\n\nfirst\n", page, "bench.object_store")
    run.publish_section("## Store\n\nsecond\n", page, "bench.object_store")
    text = page.read_text()
    assert text.startswith("# Benchmarks\n\nwritten by bench.run\n")
    assert "second" in text and "first" not in text
    assert text.count("## Store") == 1

    run.publish("# Benchmarks\n\nrewritten\n", page, "bench")
    text = page.read_text()
    assert "rewritten" in text and "written by bench.run" not in text
    assert "## Store\n\nsecond" in text  # another benchmark's section is kept


@pytest.mark.e2e
def test_both_cold_runs_are_measured_per_component(tmp_path):
    output = tmp_path / "benchmarks.md"
    output.write_text("# Benchmarks\n")
    argv = ["--rows", "1000", "--train-steps", "10", "--work-dir", str(tmp_path / "work")]
    assert object_store.main([*argv, "--output", str(output)]) == 0
    text = output.read_text()
    assert text.startswith("# Benchmarks\n")
    for node in ("CsvExampleGen", "Transform", "Trainer", "Evaluator", "Pusher"):
        assert re.search(rf"\| {node} \| [\d.]+ \| [\d.]+ \| ", text), node
    assert re.search(r"\| \*\*whole run \(wall\)\*\* \| \*\*\d+\*\* \| \*\*\d+\*\* \|", text)
    # The bucket run went through the local store: the front did the TLS work.
    front = re.search(r"\| CPU of the TLS front during the bucket run \| (\d+) \|", text)
    assert front and int(front.group(1)) > 0, text
