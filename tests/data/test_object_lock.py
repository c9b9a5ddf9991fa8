"""data/object_lock.py against the local object store (fake-gcs-server behind
scripts/object_store.sh), with real processes: a killed holder's lease runs
out and the next holder takes over; a holder that overran its lease cannot
free its successor's lock, and says so. (Holders that start at once exclude
each other: tests/components/test_idempotent_pusher.py, through the Pusher's
push_lock.)"""

import json
import os
import signal
import subprocess
import sys

import pytest

from settings.configs import REPO_ROOT
from tests.runners import loopback

pytestmark = pytest.mark.e2e
BUCKET = "locks"

_HOLD = """
import sys, time
from data import object_lock
say = lambda line: print(line, flush=True)
with object_lock.held(sys.argv[1], lease_s=float(sys.argv[2]), say=say):
    print("held", flush=True)
    if sys.argv[3] == "until-told":
        sys.stdin.readline()
    else:
        time.sleep(float(sys.argv[3]))
print("released", flush=True)
"""


@pytest.fixture(scope="module")
def store_env(tmp_path_factory):
    with loopback.object_store(tmp_path_factory.mktemp("store"), BUCKET) as settings:
        yield {
            **{k: v for k, v in os.environ.items() if not k.startswith("CFPB_")},
            **settings,
        }


def _holder(env, uri: str, lease_s: float, hold) -> subprocess.Popen:
    """A process that takes the lock and holds it `hold` seconds, or until a
    line on its stdin ("until-told")."""
    return subprocess.Popen(
        [sys.executable, "-c", _HOLD, uri, str(lease_s), str(hold)],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _until_held(holder: subprocess.Popen) -> list[str]:
    """The holder's lines up to its "held" (what it said while waiting)."""
    said = []
    for line in holder.stdout:
        if line.strip() == "held":
            return said
        said.append(line.strip())
    pytest.fail(f"never held the lock: {said}")


def _lock_state(env, uri: str) -> dict:
    read = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from data import storage; b, n = sys.argv[1][5:].split('/', 1); "
            "print(storage.gcs_client().bucket(b).blob(n).download_as_text())",
            uri,
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(read.stdout)


def test_a_killed_holders_lock_is_taken_over_when_its_lease_runs_out(store_env):
    uri = f"gs://{BUCKET}/killed.push.lock"
    killed = _holder(store_env, uri, lease_s=3, hold="until-told")
    assert _until_held(killed) == []
    killed.send_signal(signal.SIGKILL)  # no release: the lock object says "held"
    killed.wait()
    assert _lock_state(store_env, uri)["state"] == "held"

    successor = _holder(store_env, uri, lease_s=60, hold=0)
    said = _until_held(successor)
    # It waited for the dead holder (if it started within the lease), then took over.
    assert all(f"held by pid {killed.pid} " in line for line in said[:-1]), said
    assert said[-1].startswith(f"taking over the lock {uri}: its lease of 3.0 s ran out"), said
    assert f"(holder pid {killed.pid} " in said[-1]
    out, _ = successor.communicate(timeout=60)
    assert successor.returncode == 0 and out.splitlines() == ["released"], out
    assert _lock_state(store_env, uri)["state"] == "free"


def test_a_holder_that_overran_its_lease_leaves_its_successors_lock_held(store_env):
    uri = f"gs://{BUCKET}/overrun.push.lock"
    slow = _holder(store_env, uri, lease_s=2, hold="until-told")
    assert _until_held(slow) == []
    successor = _holder(store_env, uri, lease_s=600, hold="until-told")
    try:
        assert _until_held(successor)[-1].startswith("taking over the lock")
        slow.stdin.write("done\n")  # the slow holder finishes, its lease long gone
        slow.stdin.flush()
        out, _ = slow.communicate(timeout=60)
        assert f"the lock {uri} was taken over while held" in out, out
        state = _lock_state(store_env, uri)
        assert state["state"] == "held" and state["holder"].startswith(f"pid {successor.pid} ")
    finally:
        successor.kill()
        successor.wait()
