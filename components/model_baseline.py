"""Which model the Evaluator compares the candidate with: a resolver strategy.

The baseline is the model TF Serving serves: the model of the newest push
(this project's Pusher records the model id on each PushedModel,
components/idempotent_pusher.py). TFX's LatestBlessedModelStrategy returns
the latest blessed model instead, which differs once a blessed model was not
pushed (its push refused because another run pushed meanwhile, or its Pusher
killed): the next model would be compared with a model nobody serves, and the
Pusher's check (served model = baseline) would refuse every later push. A
store whose pushes predate the recorded id falls back to TFX's rule.

Once a model is blessed, the next run that trains the same model (nothing
changed: the Trainer's cache answers) would compare it with itself; the
Evaluator's inputs differ from the run that blessed it (baseline: itself, not
what it was judged against), so TFX's cache misses and TFMA evaluates the
model against itself, only to bless it again. So when the candidate already
is the baseline, this returns the baseline that candidate's blessing was
judged against (none for a first model), so the Evaluator's inputs are those
of that run and its cache answers with the same blessing. Any other
candidate, an older blessed model rolled back to included, is judged against
the served model.
"""

from __future__ import annotations

from tfx import types
from tfx.components.evaluator import constants
from tfx.dsl.components.common import resolver

from components import artifact_properties as props

CANDIDATE_KEY = "candidate"
MODEL_KEY = "model"
BLESSING_KEY = "model_blessing"
PUSHED_KEY = "pushed_model"


def served_model_id(pushes: list[types.Artifact]) -> int | None:
    """The model of the newest push that recorded its model, or None."""
    recorded = [
        p
        for p in pushes
        if p.get_int_custom_property(props.PUSHED) == 1
        and p.has_custom_property(props.PUSHED_MODEL_ID)
    ]
    if not recorded:
        return None
    return max(recorded, key=lambda p: p.id).get_int_custom_property(props.PUSHED_MODEL_ID)


def blessings_by_model(blessings: list[types.Artifact]) -> dict[int, types.Artifact]:
    """Model id -> its newest positive blessing."""
    blessed = sorted(
        (
            b
            for b in blessings
            if b.get_int_custom_property(constants.ARTIFACT_PROPERTY_BLESSED_KEY) == 1
        ),
        key=lambda b: b.id,
    )
    return {
        b.get_int_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY): b
        for b in blessed
    }


class BaselineModelStrategy(resolver.ResolverStrategy):
    """Resolves `model`/`model_blessing` to the candidate's baseline (module docstring)."""

    def resolve_artifacts(
        self, store, input_dict: dict[str, list[types.Artifact]]
    ) -> dict[str, list[types.Artifact]] | None:
        del store  # everything needed is in the input channels
        candidates = input_dict[CANDIDATE_KEY]
        models = {m.id: m for m in input_dict[MODEL_KEY]}
        blessings = blessings_by_model(input_dict[BLESSING_KEY])
        baseline_id = served_model_id(input_dict.get(PUSHED_KEY, []))
        if baseline_id is None:  # nothing pushed yet, or pushes from before the model id
            blessed_ids = sorted(set(models) & set(blessings))
            baseline_id = blessed_ids[-1] if blessed_ids else None  # the latest blessed model
        # IR-based runners resolve exactly this run's model; TFX's legacy
        # launcher (InteractiveContext) every model the Trainer wrote in the
        # pipeline, of which the newest is this run's.
        candidate_id = max((c.id for c in candidates), default=None)
        if candidate_id == baseline_id and baseline_id in blessings:
            baseline_id = blessings[baseline_id].get_int_custom_property(
                constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY
            )  # 0: judged on the floor alone
        if baseline_id not in blessings or baseline_id not in models:
            return {CANDIDATE_KEY: candidates, MODEL_KEY: [], BLESSING_KEY: [], PUSHED_KEY: []}
        return {
            CANDIDATE_KEY: candidates,
            MODEL_KEY: [models[baseline_id]],
            BLESSING_KEY: [blessings[baseline_id]],
            PUSHED_KEY: [],
        }
