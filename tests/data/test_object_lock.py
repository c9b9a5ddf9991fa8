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


def _holder(env, uri: str, lease_s: float, hold_s: float) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _HOLD, uri, str(lease_s), str(hold_s)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )


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
    killed = _holder(store_env, uri, lease_s=3, hold_s=600)
    assert killed.stdout.readline().strip() == "held"
    killed.send_signal(signal.SIGKILL)  # no release: the lock object says "held"
    killed.wait()
    assert _lock_state(store_env, uri)["state"] == "held"

    successor = _holder(store_env, uri, lease_s=60, hold_s=0)
    out, _ = successor.communicate(timeout=120)
    assert successor.returncode == 0, out
    lines = out.splitlines()
    assert lines[0].startswith(f"waiting for the lock {uri}, held by pid {killed.pid} ")
    assert lines[1].startswith(f"taking over the lock {uri}: its lease of 3.0 s ran out")
    assert lines[2:] == ["held", "released"]
    assert _lock_state(store_env, uri) == {"state": "free"}


def test_a_holder_that_overran_its_lease_leaves_its_successors_lock_held(store_env):
    uri = f"gs://{BUCKET}/overrun.push.lock"
    slow = _holder(store_env, uri, lease_s=2, hold_s=8)
    assert slow.stdout.readline().strip() == "held"
    successor = _holder(store_env, uri, lease_s=600, hold_s=30)
    try:
        # The successor takes over after 2 s, the slow holder ends at 8 s.
        assert successor.stdout.readline().startswith("waiting for the lock")
        assert successor.stdout.readline().startswith("taking over the lock")
        assert successor.stdout.readline().strip() == "held"
        out, _ = slow.communicate(timeout=60)
        assert f"the lock {uri} was taken over while held" in out, out
        state = _lock_state(store_env, uri)
        assert state["state"] == "held" and state["holder"].startswith(f"pid {successor.pid} ")
    finally:
        successor.kill()
        successor.wait()
