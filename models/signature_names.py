"""Names of the serving signatures and their input/output keys.

Kept apart from models/signatures.py, which builds the signatures with
TensorFlow, so that clients (serving/client.py's REST path) use the same
names without importing TensorFlow.
"""

# The signature TF Serving and TFMA use when a request names none
# (tensorflow/cc/saved_model/signature_constants.h: kDefaultServingSignatureDefKey).
DEFAULT_SIGNATURE = "serving_default"
PREDICTION_KEY = "dispute_probability"
EXAMPLES_INPUT = "examples"
RAW_SIGNATURE = "serving_raw"
CLASSIFICATION_SIGNATURE = "classification"
REGRESSION_SIGNATURE = "regression"
# Input and output keys TF Serving's classify/regress APIs look up
# (tensorflow/cc/saved_model/signature_constants.h).
CLASSIFY_INPUTS = "inputs"
CLASSIFY_CLASSES = "classes"
CLASSIFY_SCORES = "scores"
REGRESS_INPUTS = "inputs"
REGRESS_OUTPUTS = "outputs"
