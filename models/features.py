"""The feature spec: every feature the model uses, named once.

Transform's `preprocessing_fn`, the Keras model's inputs, the serving
signatures and client, and the curated schema's presence rules read these
definitions, so adding or resizing a feature is a change
here and nowhere else.

Vocabulary sizes follow the values seen in the 2015 export (top-k keeps the
most frequent values; one extra out-of-vocabulary index catches the rest).
`company` and `submitted_via` are in the canonical data but not features: the
2015 export has neither, so a model using them would learn from one span only.
"""

from __future__ import annotations

import dataclasses

LABEL_KEY = "consumer_disputed"
# Names of label 0 and label 1, as TF Serving's classify API reports them.
LABEL_CLASSES = ("not_disputed", "disputed")
# Out-of-vocabulary values share one extra index after the top-k vocabulary.
OOV_BUCKETS = 1


@dataclasses.dataclass(frozen=True)
class CategoricalFeature:
    """A string feature mapped to an index by a tf.Transform vocabulary.

    `embedding_dim` None means the model one-hot encodes the index; otherwise
    it learns an embedding of that size (for vocabularies too large to one-hot
    cheaply). `required`: every complaint has a value (the schema requires it
    in every row, every serving signature refuses a complaint without it);
    otherwise an empty value means "not given", like an empty CSV cell.
    """

    name: str
    vocab_size: int
    embedding_dim: int | None = None
    required: bool = False

    @property
    def num_indices(self) -> int:
        return self.vocab_size + OOV_BUCKETS


@dataclasses.dataclass(frozen=True)
class BucketizedFeature:
    """A numeric feature cut into quantile buckets (boundaries from train data).

    Index 0 is reserved for a missing value, so the model sees `num_buckets + 1`
    indices and a missing ZIP is never confused with the lowest bucket. Raw
    values are integers (data.prepare writes digits).
    """

    name: str
    num_buckets: int
    required = False  # a missing value has its own index

    @property
    def num_indices(self) -> int:
        return self.num_buckets + 1


CATEGORICAL_FEATURES: tuple[CategoricalFeature, ...] = (
    # Never empty in 2014 or 2015 (data.prepare rejects a row without product).
    CategoricalFeature("product", vocab_size=11, required=True),
    CategoricalFeature("company_response", vocab_size=6, required=True),
    CategoricalFeature("timely_response", vocab_size=2, required=True),
    CategoricalFeature("sub_product", vocab_size=45, embedding_dim=5),
    CategoricalFeature("issue", vocab_size=90, embedding_dim=5),
    CategoricalFeature("sub_issue", vocab_size=50, embedding_dim=5),
    CategoricalFeature("state", vocab_size=60, embedding_dim=5),
)

BUCKETIZED_FEATURES: tuple[BucketizedFeature, ...] = (
    # ZIP codes are five digits (masked digits as 0, see data.prepare); their
    # numeric order is roughly geographic, so quantile buckets are regions.
    BucketizedFeature("zip_code", num_buckets=10),
)

ALL_FEATURES = CATEGORICAL_FEATURES + BUCKETIZED_FEATURES
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in ALL_FEATURES)
REQUIRED_FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in ALL_FEATURES if f.required)
INTEGER_FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in BUCKETIZED_FEATURES)


def raw_missing_value(name: str) -> str | int:
    """What stands for "missing" in the dense `serving_raw` signature, which
    cannot leave a value out: '' for a string feature, 0 for a ZIP (the
    signature turns both into missing values, models/signatures.py)."""
    return 0 if name in INTEGER_FEATURE_NAMES else ""


def transformed_name(name: str) -> str:
    """Name of a feature after Transform (the book's `_xf` convention)."""
    return f"{name}_xf"


TRANSFORMED_LABEL_KEY = transformed_name(LABEL_KEY)
