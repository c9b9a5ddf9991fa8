"""The splits CsvExampleGen cuts each span into, and what each is for, stated
once. Plain strings: readers (the benchmarks, the bare script) import no TFX
to know them."""

TRAIN = "train"  # the Trainer fits on it; Transform's analyzers read only it
VALIDATION = "validation"  # the Trainer stops early on it (models/model.py)
EVAL = "eval"  # the Evaluator judges on it: rows that picked nothing
TEST = "test"  # held out for the benchmarks (bench/quality.py)

# Hash buckets of each split: 70/10/10/10.
HASH_BUCKETS = {TRAIN: 7, VALIDATION: 1, EVAL: 1, TEST: 1}
