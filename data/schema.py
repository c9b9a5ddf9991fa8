"""The curated schema: what the pipeline accepts as a span, checked into the repo.

    python -m data.schema --spans 1 2       # re-bootstrap data/schema/schema.pbtxt

The file is bootstrapped by TFDV's schema inference (what SchemaGen runs) on
the prepared spans, then curated by the rules below, which are the edits a
reviewer would make by hand and are kept here so that they are reviewable and
repeatable:

- categorical domains are the values seen in the known-good spans, with a
  minimum domain mass: a few unseen values (a new sub-issue) pass, a flood of
  them (a new product taxonomy) is an anomaly;
- presence: every model column and the label must exist in a span; the label
  and the fields every complaint has must have a value in every row, the others
  may be empty (one value at most);
- the label's domain is {0, 1};
- drift comparators (L-infinity for categoricals, Jensen-Shannon for numerics)
  with thresholds set from the measured 2014 -> 2015 change (see DRIFT);
- skew comparators with the same thresholds, for serving statistics;
- every split needs at least MIN_EXAMPLES_PER_SPLIT examples (an empty or
  header-only span is an anomaly, not a model trained on nothing);
- `company`, `submitted_via` and `date_received` are not model features (the
  2015 export has no company or channel): `date_received` keeps its presence
  requirement but no domain, the other two are marked deprecated so their
  absence is not an anomaly.

After a deliberate data change (a new product category, a new export format),
re-run this command on spans that include the new data, review the diff of
data/schema/schema.pbtxt, and commit it with the reason.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "schema.pbtxt"

# Fraction of a span's values that must be in the domain (unseen values allowed
# below 1 - mass).
MIN_DOMAIN_MASS: Dict[str, float] = {
    "product": 0.95, "sub_product": 0.9, "issue": 0.9, "sub_issue": 0.9,
    "state": 0.99, "company_response": 0.99, "timely_response": 1.0,
}
# CsvExampleGen writes an empty cell as a feature with no values, so TFDV's
# presence counts it as present: presence (min_fraction 1) means "the column
# exists", and emptiness is a value count. Every row has these (prepare rejects
# rows without product; the others were never empty in 2014 or 2015):
REQUIRED_VALUES = ("product", "company_response", "timely_response", "consumer_disputed",
                   "date_received")
# ...while these may be empty (share of empty rows in 2014 / 2015: sub_product
# 0.36 / 0.38, sub_issue 0.55 / 0.53, state 0.016 / 0.015, zip_code 0.009 /
# 0.010, issue a handful in 2014).
OPTIONAL_VALUES = ("issue", "sub_product", "sub_issue", "state", "zip_code")
# Drift thresholds. Measured between the 2014 and 2015 exports (L-infinity:
# largest change in any value's share; JS: approximate Jensen-Shannon
# divergence): product 0.030 (Mortgage), sub_product 0.020, issue 0.022,
# sub_issue 0.019, state 0.0065, timely_response 0.0060, company_response
# 0.115 ("In progress": the newer export holds more open complaints), zip_code
# JS 0.00076, consumer_disputed JS 0.0025. Thresholds sit above the ordinary
# year-to-year change so that company_response's shift is the one reported.
LINF_THRESHOLDS: Dict[str, float] = {
    "product": 0.05, "sub_product": 0.05, "issue": 0.05, "sub_issue": 0.05,
    "state": 0.02, "company_response": 0.05, "timely_response": 0.02,
}
JS_THRESHOLDS: Dict[str, float] = {"zip_code": 0.01, "consumer_disputed": 0.01}
DEPRECATED = ("company", "submitted_via")
# Per split: an empty or header-only span must not reach the Trainer (an eval
# split of 50 is also too small to bless a model on). Real spans have
# thousands per split; the tests' small samples hundreds.
MIN_EXAMPLES_PER_SPLIT = 50
LABEL = "consumer_disputed"


def curate(schema, statistics_by_span: Sequence) -> None:
    """Applies the curation rules to an inferred schema, in place."""
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import schema_pb2

    for later in statistics_by_span[1:]:
        schema.CopyFrom(tfdv.update_schema(schema, later))  # union of known-good values
    schema.dataset_constraints.min_examples_count = MIN_EXAMPLES_PER_SPLIT
    for name in DEPRECATED:
        tfdv.get_feature(schema, name).lifecycle_stage = schema_pb2.DEPRECATED
    date = tfdv.get_feature(schema, "date_received")
    if date.HasField("domain"):
        domain = date.domain
        date.ClearField("domain")
        for i, string_domain in enumerate(schema.string_domain):
            if string_domain.name == domain:
                del schema.string_domain[i]
                break
    for name, mass in MIN_DOMAIN_MASS.items():
        tfdv.get_feature(schema, name).distribution_constraints.min_domain_mass = mass
    for name in REQUIRED_VALUES + OPTIONAL_VALUES:
        feature = tfdv.get_feature(schema, name)
        feature.presence.min_fraction = 1.0
        feature.presence.min_count = 1
        if name in REQUIRED_VALUES:
            feature.ClearField("value_count")
            feature.shape.ClearField("dim")
            feature.shape.dim.add(size=1)
        else:  # a VarLen feature of at most one value; Transform fills in missing ones
            feature.ClearField("shape")
            feature.value_count.ClearField("min")
            feature.value_count.max = 1
    label = tfdv.get_feature(schema, LABEL)
    label.int_domain.min, label.int_domain.max = 0, 1
    for name, threshold in LINF_THRESHOLDS.items():
        feature = tfdv.get_feature(schema, name)
        feature.drift_comparator.infinity_norm.threshold = threshold
        feature.skew_comparator.infinity_norm.threshold = threshold
    for name, threshold in JS_THRESHOLDS.items():
        feature = tfdv.get_feature(schema, name)
        feature.drift_comparator.jensen_shannon_divergence.threshold = threshold
        feature.skew_comparator.jensen_shannon_divergence.threshold = threshold


def bootstrap(span_files: Sequence[Path]):
    """TFDV-inferred schema (as SchemaGen infers it) of the first span, curated."""
    import tensorflow_data_validation as tfdv
    statistics = [tfdv.generate_statistics_from_csv(str(f)) for f in span_files]
    schema = tfdv.infer_schema(statistics[0], infer_feature_shape=True)
    curate(schema, statistics)
    return schema


def main(argv: Optional[Sequence[str]] = None) -> int:
    from data import prepare
    from pipeline.configs import PipelineConfig
    config = PipelineConfig.from_env()
    parser = argparse.ArgumentParser(prog="python -m data.schema", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, nargs="+", default=[1, 2],
                        help="known-good spans; the first is inferred from, the others "
                             "widen the domains (default: %(default)s)")
    parser.add_argument("--spans-dir", type=Path, default=Path(config.data_root),
                        help="prepared spans (default: %(default)s)")
    parser.add_argument("--output", type=Path, default=SCHEMA_PATH)
    args = parser.parse_args(argv)
    files = [prepare.span_dir(args.spans_dir, s) / prepare.SPAN_FILE_NAME for s in args.spans]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        print(f"error: no prepared span at {', '.join(missing)} "
              "(python -m data.prepare, or run the pipeline once)", file=sys.stderr)
        return 1
    import tensorflow_data_validation as tfdv
    schema = bootstrap(files)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tfdv.write_schema_text(schema, str(args.output))
    print(f"wrote {args.output} from spans {args.spans}; review `git diff` before committing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
