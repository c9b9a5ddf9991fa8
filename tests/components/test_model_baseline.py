"""Which model the Evaluator is compared with, on Model/ModelBlessing artifacts
as TFX's Evaluator writes them (blessed flag, current and baseline model ids)."""

from tfx.types import standard_artifacts

from components import model_baseline

_next_id = iter(range(1, 1000))


def _model() -> standard_artifacts.Model:
    model = standard_artifacts.Model()
    model.id = next(_next_id)
    return model


def _blessing(model, blessed: bool, baseline=None) -> standard_artifacts.ModelBlessing:
    blessing = standard_artifacts.ModelBlessing()
    blessing.id = next(_next_id)
    blessing.set_int_custom_property("blessed", int(blessed))
    blessing.set_int_custom_property("current_model_id", model.id)
    if baseline is not None:
        blessing.set_int_custom_property("baseline_model_id", baseline.id)
    return blessing


def _push(model, pushed: bool = True) -> standard_artifacts.PushedModel:
    """A PushedModel as components/idempotent_pusher.py records it."""
    push = standard_artifacts.PushedModel()
    push.id = next(_next_id)
    push.set_int_custom_property("pushed", int(pushed))
    if pushed:
        push.set_int_custom_property("pushed_model_id", model.id)
    return push


def _baseline(candidate, models, blessings, pushes=()):
    resolved = model_baseline.BaselineModelStrategy().resolve_artifacts(
        None,
        {
            "candidate": [candidate],
            "model": list(models),
            "model_blessing": list(blessings),
            "pushed_model": list(pushes),
        },
    )
    assert resolved["candidate"] == [candidate]
    assert len(resolved["model"]) == len(resolved["model_blessing"])
    if not resolved["model"]:
        return None
    (model,), (blessing,) = resolved["model"], resolved["model_blessing"]
    assert blessing.get_int_custom_property("current_model_id") == model.id
    return model


def test_a_new_model_is_compared_with_the_latest_blessed_one():
    first, second, third = _model(), _model(), _model()
    blessings = [_blessing(first, True), _blessing(second, True, baseline=first)]
    assert _baseline(third, [first, second, third], blessings) is second


def test_the_first_model_has_no_baseline():
    first = _model()
    assert _baseline(first, [first], []) is None


def test_the_latest_blessed_model_again_gets_the_baseline_it_was_blessed_against():
    first, second = _model(), _model()
    first_blessing = _blessing(first, True)
    blessings = [first_blessing, _blessing(second, True, baseline=first)]
    # The same model trained again (the Trainer's cache answered): the Evaluator
    # sees the inputs of the run that blessed it, never the model against itself.
    assert _baseline(second, [first, second], blessings) is first
    assert _baseline(first, [first], [first_blessing]) is None


def test_a_rolled_back_older_model_is_judged_against_the_latest_blessed_one():
    first, second = _model(), _model()
    blessings = [_blessing(first, True), _blessing(second, True, baseline=first)]
    assert _baseline(first, [first, second], blessings) is second


def test_models_that_were_not_blessed_are_never_a_baseline():
    first, second, third = _model(), _model(), _model()
    blessings = [_blessing(first, True), _blessing(second, False, baseline=first)]
    assert _baseline(third, [first, second, third], blessings) is first
    assert _baseline(second, [first, second], blessings) is first


def test_the_served_model_is_the_baseline_not_a_later_blessed_one_that_was_not_pushed():
    """Two runs overlapped: both blessed their model against the first, one
    pushed, the other's push was refused. The served model is the baseline."""
    first, served, refused, candidate = _model(), _model(), _model(), _model()
    blessings = [
        _blessing(first, True),
        _blessing(served, True, baseline=first),
        _blessing(refused, True, baseline=first),
    ]
    pushes = [_push(first), _push(served), _push(refused, pushed=False)]
    models = [first, served, refused, candidate]
    assert _baseline(candidate, models, blessings, pushes) is served
    # Without recorded pushes (a store from before them): the latest blessed model.
    assert _baseline(candidate, models, blessings) is refused


def test_the_served_model_trained_again_gets_the_baseline_it_was_blessed_against():
    first, second = _model(), _model()
    blessings = [_blessing(first, True), _blessing(second, True, baseline=first)]
    pushes = [_push(first), _push(second)]
    assert _baseline(second, [first, second], blessings, pushes) is first
    # A rollback pushed run 1's model again: it is served, so it is the baseline.
    pushes.append(_push(first))
    third = _model()
    assert _baseline(third, [first, second, third], blessings, pushes) is first
