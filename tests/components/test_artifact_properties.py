"""The artifact property names the readers use are TFX's own."""

from tfx.components.evaluator import constants as evaluator_constants
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.pusher import executor as pusher_executor
from tfx.types import standard_artifacts

from components import artifact_properties as props


def test_each_name_is_the_one_tfx_writes():
    assert props.SPAN == example_gen_utils.SPAN_PROPERTY_NAME
    assert props.SPLIT_NAMES in standard_artifacts.Examples.PROPERTIES
    assert props.BLESSED == evaluator_constants.ARTIFACT_PROPERTY_BLESSED_KEY
    assert props.BASELINE_MODEL_URI == evaluator_constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY
    assert props.BASELINE_MODEL_ID == evaluator_constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY
    # The Pusher keeps its names private; these are its module's values.
    assert props.PUSHED == pusher_executor._PUSHED_KEY
    assert props.PUSHED_DESTINATION == pusher_executor._PUSHED_DESTINATION_KEY
    assert props.PUSHED_VERSION == pusher_executor._PUSHED_VERSION_KEY
