"""Work units for `pytest -n 2` (make test): a test module runs whole in one
process, so its module fixtures (a scenario of pipeline runs) are made once;
the modules that need the MariaDB/PostgreSQL servers, whose data folder is
one fixed place (build/test-services), share one process.

pytest-xdist's own `--dist loadgroup` cannot do this under pytest 9: it puts
the group into `item._nodeid`, which pytest 9 no longer reads (`Node.nodeid`
is `str(self._id)`), so every test became a unit of its own and both
processes made the same module fixtures (measured 2026-12-03: the parity
scenario ran twice at once). This scheduler derives the unit from the node id
itself, through xdist's public `pytest_xdist_make_scheduler` hook; the
controller sees only node ids, so the server modules are listed here.
tests/test_work_units.py runs pytest -n 2 to check the grouping.
"""

from __future__ import annotations

from xdist.scheduler import LoadScopeScheduling

SERVERS_UNIT = "servers"
SERVER_MODULES = (
    "tests/scripts/test_dev_services.py",
    "tests/runners/test_team_servers.py",
    "tests/runners/test_faults.py",
    "tests/notebooks/test_interactive_pipeline.py",
)


def work_unit(nodeid: str) -> str:
    """The unit a test belongs to: its module, or the servers' unit."""
    module = nodeid.split("::", 1)[0]
    return SERVERS_UNIT if module in SERVER_MODULES else module


class ModuleScheduling(LoadScopeScheduling):
    """xdist's scope scheduling, with `work_unit` as the scope."""

    def _split_scope(self, nodeid: str) -> str:
        return work_unit(nodeid)


def pytest_xdist_make_scheduler(config, log):
    return ModuleScheduling(config, log)
