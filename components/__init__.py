"""Custom TFX pieces of this pipeline."""

# KFP v2 containers import custom artifact types by their TYPE_NAME,
# "components.DataValidation" (see validation_gate.DataValidation).
from components.batch_scoring import ComplaintScores  # noqa: F401
from components.validation_gate import DataValidation  # noqa: F401
