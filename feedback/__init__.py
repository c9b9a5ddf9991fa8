"""The feedback loop: served requests logged in TF Serving's PredictionLog
format, training/serving skew measured on them, and outcomes learned later
joined back into an export the next run ingests (docs/feedback-loop.md).
"""
