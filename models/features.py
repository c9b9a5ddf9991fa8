"""The feature spec: every raw input a complaint carries and every feature
the model reads, named once.

Two lists, because the model reads more than a complaint states:
- the raw inputs (RAW_INPUTS): the canonical CSV's columns (data/prepare.py),
  the curated schema's rules (presence, domain coverage, drift thresholds:
  data/schema.py), what every serving signature and the client take, what
  serving logs and the skew check compare;
- the model features (MODEL_FEATURES): Transform's outputs, the Keras model's
  inputs. Most are a raw input encoded (a vocabulary, quantile buckets);
  the derived ones are computed in Transform from raw inputs (a ZIP's
  region, days from receipt to the company, the weekday, a cross), so
  serving computes them from a raw complaint with the same graph.
Adding or resizing a feature is a change here (and its computation in
models/preprocessing.py) and nowhere else.

Vocabulary sizes follow the values seen in the 2015 export (top-k keeps the
most frequent values; one extra out-of-vocabulary index catches the rest).
`company` and `submitted_via` are in the canonical data but not features: the
2015 export has neither, so a model using them would learn from one span only.
"""

from __future__ import annotations

import dataclasses
from typing import TypeAlias

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

    The data contract (data/schema.py writes it into the curated schema):
    `min_domain_mass`, the share of a span's values that must be in the
    schema's domain (unseen values are an anomaly beyond the rest);
    `drift_linf`, the largest change of any value's share between two spans'
    statistics that is still not drift (L-infinity distance).
    """

    name: str
    vocab_size: int
    min_domain_mass: float
    drift_linf: float
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
    values are integers (data.prepare writes digits). `drift_js`: the largest
    approximate Jensen-Shannon divergence between two spans' distributions
    that is still not drift.
    """

    name: str
    num_buckets: int
    drift_js: float
    required = False  # a missing value has its own index

    @property
    def num_indices(self) -> int:
        return self.num_buckets + 1


# Drift thresholds sit above the ordinary year-to-year change, measured
# between the 2014 and 2015 exports (L-infinity): product 0.030 (Mortgage),
# sub_product 0.020, issue 0.022, sub_issue 0.019, state 0.0065,
# timely_response 0.0060, company_response 0.115 ("In progress": the newer
# export holds more open complaints, the shift to report); zip_code JS 0.00076.
CATEGORICAL_FEATURES: tuple[CategoricalFeature, ...] = (
    # Never empty in 2014 or 2015 (data.prepare rejects a row without product).
    CategoricalFeature(
        "product", vocab_size=11, min_domain_mass=0.95, drift_linf=0.05, required=True
    ),
    CategoricalFeature(
        "company_response", vocab_size=6, min_domain_mass=0.99, drift_linf=0.05, required=True
    ),
    CategoricalFeature(
        "timely_response", vocab_size=2, min_domain_mass=1.0, drift_linf=0.02, required=True
    ),
    CategoricalFeature(
        "sub_product", vocab_size=45, min_domain_mass=0.9, drift_linf=0.05, embedding_dim=5
    ),
    CategoricalFeature(
        "issue", vocab_size=90, min_domain_mass=0.9, drift_linf=0.05, embedding_dim=5
    ),
    CategoricalFeature(
        "sub_issue", vocab_size=50, min_domain_mass=0.9, drift_linf=0.05, embedding_dim=5
    ),
    CategoricalFeature(
        "state", vocab_size=60, min_domain_mass=0.99, drift_linf=0.02, embedding_dim=5
    ),
)

BUCKETIZED_FEATURES: tuple[BucketizedFeature, ...] = (
    # ZIP codes are five digits (masked digits as 0, see data.prepare); their
    # numeric order is roughly geographic, so quantile buckets are regions.
    BucketizedFeature("zip_code", num_buckets=10, drift_js=0.01),
)


@dataclasses.dataclass(frozen=True)
class DateInput:
    """A raw date, ISO `YYYY-MM-DD` (data.prepare writes every export's dates
    so), required in every complaint. The model never reads a date itself
    (it would learn the span): only features derived from it."""

    name: str
    required = True


# A date input's only spelling (a regular expression; serving refuses others).
DATE_PATTERN = r"\d{4}-\d{2}-\d{2}"
# CFPB's two dates of a complaint; both exports have both.
DATE_RECEIVED = DateInput("date_received")
DATE_SENT_TO_COMPANY = DateInput("date_sent_to_company")
DATE_INPUTS: tuple[DateInput, ...] = (DATE_RECEIVED, DATE_SENT_TO_COMPANY)

RAW_INPUTS = CATEGORICAL_FEATURES + BUCKETIZED_FEATURES + DATE_INPUTS
RAW_INPUT_NAMES: tuple[str, ...] = tuple(f.name for f in RAW_INPUTS)
REQUIRED_INPUT_NAMES: tuple[str, ...] = tuple(f.name for f in RAW_INPUTS if f.required)
INTEGER_INPUT_NAMES: tuple[str, ...] = tuple(f.name for f in BUCKETIZED_FEATURES)
DATE_INPUT_NAMES: tuple[str, ...] = tuple(f.name for f in DATE_INPUTS)


@dataclasses.dataclass(frozen=True)
class RegionFeature:
    """The leading `digits` of a ZIP code as a category (a vocabulary of the
    most frequent `vocab_size` regions): a 3-digit ZIP is a postal region,
    finer than quantile buckets and not ordered. Missing ZIP: its own value."""

    name: str
    source: str
    digits: int
    vocab_size: int
    embedding_dim: int

    @property
    def num_indices(self) -> int:
        return self.vocab_size + OOV_BUCKETS


@dataclasses.dataclass(frozen=True)
class CrossFeature:
    """Two categorical inputs' values joined as one category (a vocabulary of
    the `vocab_size` most frequent pairs): what one-hot inputs into a small
    network learn only slowly, given directly."""

    name: str
    sources: tuple[str, str]
    vocab_size: int
    embedding_dim: int | None = None

    @property
    def num_indices(self) -> int:
        return self.vocab_size + OOV_BUCKETS


@dataclasses.dataclass(frozen=True)
class DaysBetweenFeature:
    """Whole days from one date input to a later one, cut at fixed
    `boundaries` (days): bucket i holds boundaries[i-1] <= days < boundaries[i].
    A negative count (a data error) falls in bucket 0."""

    name: str
    start: str
    end: str
    boundaries: tuple[int, ...]
    embedding_dim = None

    @property
    def num_indices(self) -> int:
        return len(self.boundaries) + 1


@dataclasses.dataclass(frozen=True)
class WeekdayFeature:
    """The weekday of a date input, Monday 0 to Sunday 6."""

    name: str
    source: str
    embedding_dim = None
    num_indices = 7


DerivedFeature: TypeAlias = RegionFeature | CrossFeature | DaysBetweenFeature | WeekdayFeature

# Measured on the 2015 export's final outcomes (data/README.md, "Features"):
# the days to the company add most (median 1 day, 90% within 7, 99% within
# 34); the region, weekday and cross a little each. No month: every span
# holds a few months, so a month is a span's name, not a complaint's trait.
DERIVED_FEATURES: tuple[DerivedFeature, ...] = (
    RegionFeature("zip_region", source="zip_code", digits=3, vocab_size=400, embedding_dim=8),
    DaysBetweenFeature(
        "days_to_company",
        start=DATE_RECEIVED.name,
        end=DATE_SENT_TO_COMPANY.name,
        boundaries=(1, 2, 3, 5, 8, 15, 31),
    ),
    WeekdayFeature("received_weekday", source=DATE_RECEIVED.name),
    CrossFeature(
        "product_x_company_response",
        sources=("product", "company_response"),
        vocab_size=60,
        embedding_dim=5,
    ),
)

ModelFeature: TypeAlias = CategoricalFeature | BucketizedFeature | DerivedFeature
MODEL_FEATURES: tuple[ModelFeature, ...] = (
    CATEGORICAL_FEATURES + BUCKETIZED_FEATURES + DERIVED_FEATURES
)
MODEL_FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in MODEL_FEATURES)


def raw_missing_value(name: str) -> str | int:
    """What stands for "missing" in the dense `serving_raw` signature, which
    cannot leave a value out: '' for a string input, 0 for a ZIP (the
    signature turns both into missing values, models/signatures.py)."""
    return 0 if name in INTEGER_INPUT_NAMES else ""


def transformed_name(name: str) -> str:
    """Name of a feature after Transform (the book's `_xf` convention)."""
    return f"{name}_xf"


TRANSFORMED_LABEL_KEY = transformed_name(LABEL_KEY)
