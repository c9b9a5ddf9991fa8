"""tests/work_units.py: under `pytest -n 2` a module's tests share one process
(so its module fixture is made once), and the server modules share one."""

import os
import subprocess
import sys

from settings.configs import REPO_ROOT
from tests import work_units

_MODULE = r"""
import os, pytest

@pytest.fixture(scope="module")
def made_in():
    return os.environ["PYTEST_XDIST_WORKER"]

@pytest.mark.parametrize("n", range(4))
def test_one(made_in, n):
    with open(os.environ["RAN_LOG"], "a") as log:
        log.write(f"{__name__} {made_in} {os.environ['PYTEST_XDIST_WORKER']}\n")
"""


def test_each_module_runs_whole_in_one_process(tmp_path):
    for name in ("test_a.py", "test_b.py", "test_c.py"):
        (tmp_path / name).write_text(_MODULE)
    log = tmp_path / "ran.log"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.work_units", "-n", "2", "-q"]
        + ["-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=REPO_ROOT,
        env={**os.environ, "RAN_LOG": str(log)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ran = [line.split() for line in log.read_text().splitlines()]
    assert len(ran) == 12
    # Every test of a module in the process that made its fixture, and the
    # module's fixture made once.
    assert all(made == running for _, made, running in ran), ran
    workers = {module: {w for m, w, _ in ran if m == module} for module, _, _ in ran}
    assert all(len(w) == 1 for w in workers.values()), workers


def test_the_server_modules_are_one_unit():
    units = {work_units.work_unit(f"{m}::test_x[1]") for m in work_units.SERVER_MODULES}
    assert units == {work_units.SERVERS_UNIT}
    assert work_units.work_unit("tests/runners/test_kfp_parity.py::test_y") == (
        "tests/runners/test_kfp_parity.py"
    )
