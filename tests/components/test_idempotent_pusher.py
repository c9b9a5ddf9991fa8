import os
import shutil
import subprocess
import sys

import pytest
import tensorflow as tf

from components import artifact_properties, idempotent_pusher
from settings.configs import REPO_ROOT
from tests.runners import loopback


class _Scale(tf.Module):
    def __init__(self, factor):
        super().__init__()
        self.factor = tf.Variable(factor)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def __call__(self, x):
        return x * self.factor


def _saved_model(path, factor):
    tf.saved_model.save(_Scale(factor), str(path))
    return path


def test_an_already_pushed_identical_model_is_found(tmp_path):
    model = _saved_model(tmp_path / "trainer_output", 2.0)
    serving = tmp_path / "serving"
    shutil.copytree(model, serving / "1700000000")

    assert idempotent_pusher.find_identical_version(str(model), str(serving)) == (
        "1700000000",
        str(serving / "1700000000"),
    )


def test_a_different_model_is_not_mistaken_for_a_pushed_one(tmp_path):
    serving = tmp_path / "serving"
    shutil.copytree(_saved_model(tmp_path / "old", 2.0), serving / "1700000000")
    new = _saved_model(tmp_path / "new", 3.0)

    assert idempotent_pusher.find_identical_version(str(new), str(serving)) is None


def test_nothing_pushed_yet(tmp_path):
    model = _saved_model(tmp_path / "model", 2.0)
    assert idempotent_pusher.find_identical_version(str(model), str(tmp_path / "none")) is None


def test_only_the_served_version_counts_as_already_pushed(tmp_path):
    # Version folders sort as numbers (TF Serving serves the highest), not as text.
    serving = tmp_path / "serving"
    shutil.copytree(_saved_model(tmp_path / "served", 2.0), serving / "10")
    older = _saved_model(tmp_path / "older", 3.0)
    shutil.copytree(older, serving / "9")

    assert idempotent_pusher.newest_version(str(serving)) == "10"
    assert idempotent_pusher.find_identical_version(str(older), str(serving)) is None


def test_a_push_interrupted_mid_copy_is_neither_served_nor_reused(tmp_path):
    # TFX's Pusher copies saved_model.pb last: a push killed (or out of disk)
    # mid-copy leaves a newer folder without it, which TF Serving cannot load.
    serving = tmp_path / "serving"
    shutil.copytree(_saved_model(tmp_path / "served", 2.0), serving / "10")
    candidate = _saved_model(tmp_path / "candidate", 3.0)
    shutil.copytree(candidate, serving / "12", ignore=shutil.ignore_patterns("saved_model.pb"))

    assert idempotent_pusher.newest_version(str(serving)) == "10"
    # Not "already pushed": the next push copies the candidate whole, as a new version.
    assert idempotent_pusher.find_identical_version(str(candidate), str(serving)) is None


def _model_artifact_dir(tmp_path, saved_model, name):
    """A Trainer's Model artifact folder holding `saved_model` (TFX's layout)."""
    uri = tmp_path / name / "model"
    shutil.copytree(saved_model, uri / "Format-Serving")
    return uri


def _push(tmp_path, model_dir, serving, name, baseline=None):
    """Runs the real executor on a blessed Model artifact, as the Pusher node
    does; `baseline` is the SavedModel it was compared with (None: none)."""
    from tfx.proto import pusher_pb2
    from tfx.types import standard_artifacts
    from tfx.types import standard_component_specs as keys
    from tfx.utils import proto_utils

    model = standard_artifacts.Model()
    model.id = 7
    model.uri = str(_model_artifact_dir(tmp_path, model_dir, name))
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / name / "blessing")
    blessing.set_int_custom_property("blessed", 1)
    if baseline is not None:
        baseline_uri = _model_artifact_dir(tmp_path, baseline, f"{name}-baseline")
        blessing.set_string_custom_property("baseline_model", str(baseline_uri))
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / name / "pushed")
    destination = pusher_pb2.PushDestination(
        filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=str(serving))
    )
    idempotent_pusher.Executor().Do(
        {keys.MODEL_KEY: [model], keys.MODEL_BLESSING_KEY: [blessing]},
        {keys.PUSHED_MODEL_KEY: [pushed]},
        {
            keys.PUSH_DESTINATION_KEY: proto_utils.proto_to_json(destination),
            keys.CUSTOM_CONFIG_KEY: "null",
        },
    )
    return pushed


def test_a_rolled_back_model_is_pushed_as_a_new_served_version(tmp_path):
    old, new = _saved_model(tmp_path / "old", 2.0), _saved_model(tmp_path / "new", 3.0)
    serving = tmp_path / "serving"
    shutil.copytree(old, serving / "1700000000")
    shutil.copytree(new, serving / "1700000100")

    pushed = _push(tmp_path, old, serving, "rollback", baseline=new)

    version = pushed.get_string_custom_property("pushed_version")
    assert int(version) > 1700000100
    assert idempotent_pusher.newest_version(str(serving)) == version
    assert not pushed.get_int_custom_property(artifact_properties.REUSED_VERSION)
    assert (serving / version / "fingerprint.pb").read_bytes() == (
        old / "fingerprint.pb"
    ).read_bytes()


def test_the_served_model_blessed_again_is_not_copied(tmp_path):
    model = _saved_model(tmp_path / "model", 2.0)
    serving = tmp_path / "serving"
    shutil.copytree(model, serving / "1700000000")

    pushed = _push(tmp_path, model, serving, "again")

    assert pushed.get_string_custom_property("pushed_version") == "1700000000"
    assert pushed.get_int_custom_property(artifact_properties.REUSED_VERSION) == 1
    assert sorted(p.name for p in serving.iterdir()) == ["1700000000"]


def test_a_model_compared_with_the_served_one_is_pushed(tmp_path):
    served, new = _saved_model(tmp_path / "served", 2.0), _saved_model(tmp_path / "new", 3.0)
    serving = tmp_path / "serving"
    shutil.copytree(served, serving / "1700000000")

    pushed = _push(tmp_path, new, serving, "run", baseline=served)

    assert pushed.get_int_custom_property("pushed") == 1
    assert pushed.get_int_custom_property(artifact_properties.PUSHED_MODEL_ID) == 7
    assert idempotent_pusher.newest_version(str(serving)) == pushed.get_string_custom_property(
        "pushed_version"
    )


def test_a_model_compared_with_a_model_no_longer_served_is_not_pushed(tmp_path):
    """Two runs blessed their models against version 1700000000; the other
    one pushed first. This one never beat the model now served."""
    first = _saved_model(tmp_path / "first", 2.0)
    others, mine = _saved_model(tmp_path / "others", 3.0), _saved_model(tmp_path / "mine", 4.0)
    serving = tmp_path / "serving"
    shutil.copytree(first, serving / "1700000000")
    shutil.copytree(others, serving / "1700000100")

    pushed = _push(tmp_path, mine, serving, "late", baseline=first)

    assert pushed.get_int_custom_property("pushed") == 0
    assert not pushed.has_custom_property(artifact_properties.PUSHED_MODEL_ID)
    refused = pushed.get_string_custom_property(artifact_properties.PUSH_REFUSED)
    assert f"version 1700000100 of {serving} was pushed after this model was compared" in refused
    assert sorted(p.name for p in serving.iterdir()) == ["1700000000", "1700000100"]


def test_a_first_model_is_pushed_only_where_nothing_is_served_yet(tmp_path):
    mine, others = _saved_model(tmp_path / "mine", 2.0), _saved_model(tmp_path / "others", 3.0)
    empty, taken = tmp_path / "empty", tmp_path / "taken"
    shutil.copytree(others, taken / "1700000000")

    assert _push(tmp_path, mine, empty, "first").get_int_custom_property("pushed") == 1
    refused = _push(tmp_path, mine, taken, "second")
    assert refused.get_int_custom_property("pushed") == 0
    assert "compared with no served model" in refused.get_string_custom_property(
        artifact_properties.PUSH_REFUSED
    )


def test_a_push_waits_for_another_push_to_the_same_folder(tmp_path):
    """The check and the copy are one step: a push started while another
    holds the folder's lock waits for it, then checks what it left."""
    import threading

    served, new = _saved_model(tmp_path / "served", 2.0), _saved_model(tmp_path / "new", 3.0)
    serving = tmp_path / "serving"
    shutil.copytree(served, serving / "1700000000")
    results = []
    with idempotent_pusher.push_lock(str(serving)):
        pusher = threading.Thread(
            target=lambda: results.append(_push(tmp_path, new, serving, "waiting", baseline=served))
        )
        pusher.start()
        pusher.join(timeout=3)
        assert pusher.is_alive() and not results  # still waiting for the lock
        # Meanwhile the holder pushes another model.
        shutil.copytree(new, serving / "1700000100")
    pusher.join(timeout=60)
    # It found this same model served: nothing copied, the version reused.
    assert results[0].get_int_custom_property(artifact_properties.REUSED_VERSION) == 1
    assert sorted(p.name for p in serving.iterdir()) == ["1700000000", "1700000100"]


_PUSH_UNDER_THE_LOCK = """
import sys, time
from components import idempotent_pusher
print("ready", flush=True)
sys.stdin.readline()  # every holder starts at once
with idempotent_pusher.push_lock(sys.argv[1]):
    print("in", time.time(), flush=True)
    time.sleep(1.5)
    print("out", time.time(), flush=True)
"""


@pytest.mark.e2e
def test_pushes_to_a_bucket_never_interleave(tmp_path):
    """Three processes push to one bucket folder at once: the check and the
    copy of each happen alone (a lock object of conditional writes)."""
    with loopback.object_store(tmp_path / "store", "pushes") as store:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("CFPB_")}, **store}
        pushers = [
            subprocess.Popen(
                [sys.executable, "-c", _PUSH_UNDER_THE_LOCK, "gs://pushes/serving/cfpb-disputes"],
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        for pusher in pushers:
            assert pusher.stdout.readline().strip() == "ready"
        for pusher in pushers:
            pusher.stdin.write("go\n")
            pusher.stdin.flush()
        spans = []
        for pusher in pushers:
            out, _ = pusher.communicate(timeout=120)
            assert pusher.returncode == 0, out
            times = dict(
                line.split()[:2] for line in out.splitlines() if line[:3] in ("in ", "out")
            )
            spans.append((float(times["in"]), float(times["out"])))
    spans.sort()
    for (_, left), (entered, _) in zip(spans, spans[1:], strict=False):
        assert entered >= left, spans  # the next entered after the last left
