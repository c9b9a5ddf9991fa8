import shutil

import tensorflow as tf

from components import idempotent_pusher


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
        "1700000000", str(serving / "1700000000"))


def test_a_different_model_is_not_mistaken_for_a_pushed_one(tmp_path):
    serving = tmp_path / "serving"
    shutil.copytree(_saved_model(tmp_path / "old", 2.0), serving / "1700000000")
    new = _saved_model(tmp_path / "new", 3.0)

    assert idempotent_pusher.find_identical_version(str(new), str(serving)) is None


def test_nothing_pushed_yet(tmp_path):
    model = _saved_model(tmp_path / "model", 2.0)
    assert idempotent_pusher.find_identical_version(str(model), str(tmp_path / "none")) is None
