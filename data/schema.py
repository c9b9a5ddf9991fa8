"""The curated schema: what the pipeline accepts as a span, checked into the repo.

    python -m data.schema diff              # what accepting the newest span would change
    python -m data.schema accept            # write exactly that into curated_schema.pbtxt
    python -m data.schema bootstrap --spans 20141113 20150319   # re-infer from scratch

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
- the dates (`date_received`, `date_sent_to_company`) are required but have
  no domain (every span brings new days); `company` and `submitted_via` are
  not model inputs (the 2015 export has neither): marked deprecated so their
  absence is not an anomaly.

Schema evolution is a reviewed step. When the gate refuses a span because
CFPB's taxonomy moved (new products, sub-products, issues), `diff` lists the
values the span adds to each domain, with their share of the span's rows, and
the rows that leave a required value empty; `accept` adds exactly those values
to the domains in data/curated_schema.pbtxt (nothing else changes), to be
reviewed with `git diff` and committed with the reason. Neither reads more
than the prepared span's CSV: no TensorFlow, a few seconds. Empty required
values are listed but never accepted: the model reads those features as
always present (models/features.py), so that needs a code change.
"""

from __future__ import annotations

import argparse
import collections
import csv
import dataclasses
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from data import prepare, storage
from data.storage import Location
from models import features
from settings import configs

SCHEMA_PATH = configs.CURATED_SCHEMA

# Fraction of a span's values that must be in the domain (unseen values allowed
# below 1 - mass): the feature spec's data contract.
MIN_DOMAIN_MASS: dict[str, float] = {
    f.name: f.min_domain_mass for f in features.CATEGORICAL_FEATURES
}
# CsvExampleGen writes an empty cell as a feature with no values, so TFDV's
# presence counts it as present: presence (min_fraction 1) means "the column
# exists", and emptiness is a value count. Every row has the feature spec's
# required features, the label and the date...
REQUIRED_VALUES = features.REQUIRED_INPUT_NAMES + (features.LABEL_KEY,)
# ...while the other features may be empty (share of empty rows in 2014 / 2015:
# sub_product 0.36 / 0.38, sub_issue 0.55 / 0.53, state 0.016 / 0.015, zip_code
# 0.009 / 0.010, issue a handful in 2014).
OPTIONAL_VALUES = tuple(n for n in features.RAW_INPUT_NAMES if n not in REQUIRED_VALUES)
# Drift thresholds (L-infinity: largest change in any value's share; JS:
# approximate Jensen-Shannon divergence), from the feature spec; the label's
# own (measured 2014 vs 2015: JS 0.0025) is stated here with it.
LINF_THRESHOLDS: dict[str, float] = {f.name: f.drift_linf for f in features.CATEGORICAL_FEATURES}
LABEL_DRIFT_JS = 0.01
JS_THRESHOLDS: dict[str, float] = {
    **{f.name: f.drift_js for f in features.BUCKETIZED_FEATURES},
    features.LABEL_KEY: LABEL_DRIFT_JS,
}
# Columns of the canonical data that are not features (not in every export).
DEPRECATED = prepare.OPTIONAL_COLUMNS
# Per split: an empty split must not reach the Trainer. Small spans are
# legitimate (a month of a few hundred complaints trains inside the window);
# data/prepare.py refuses exports under MIN_SPAN_ROWS rows before this.
MIN_EXAMPLES_PER_SPLIT = 1


def curate(schema, statistics_by_span: Sequence) -> None:
    """Applies the curation rules to an inferred schema, in place."""
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import schema_pb2

    for later in statistics_by_span[1:]:
        schema.CopyFrom(tfdv.update_schema(schema, later))  # union of known-good values
    schema.dataset_constraints.min_examples_count = MIN_EXAMPLES_PER_SPLIT
    for name in DEPRECATED:
        tfdv.get_feature(schema, name).lifecycle_stage = schema_pb2.DEPRECATED
    for name in features.DATE_INPUT_NAMES:
        date = tfdv.get_feature(schema, name)
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
    label = tfdv.get_feature(schema, features.LABEL_KEY)
    label.int_domain.min, label.int_domain.max = 0, 1
    for name, threshold in LINF_THRESHOLDS.items():
        feature = tfdv.get_feature(schema, name)
        feature.drift_comparator.infinity_norm.threshold = threshold
        feature.skew_comparator.infinity_norm.threshold = threshold
    for name, threshold in JS_THRESHOLDS.items():
        feature = tfdv.get_feature(schema, name)
        feature.drift_comparator.jensen_shannon_divergence.threshold = threshold
        feature.skew_comparator.jensen_shannon_divergence.threshold = threshold


def bootstrap(span_files: Sequence[Location]):
    """TFDV-inferred schema (as SchemaGen infers it) of the first span, curated."""
    import tensorflow_data_validation as tfdv

    statistics = [tfdv.generate_statistics_from_csv(str(f)) for f in span_files]
    schema = tfdv.infer_schema(statistics[0], infer_feature_shape=True)
    curate(schema, statistics)
    return schema


@dataclasses.dataclass
class DomainChange:
    """Values a span has that a feature's domain lacks."""

    feature: str
    new_values: list[tuple[str, int]]  # (value, rows), most rows first
    rows_with_value: int  # rows where the feature is not empty
    min_domain_mass: float

    @property
    def new_share(self) -> float:
        return sum(n for _, n in self.new_values) / max(self.rows_with_value, 1)

    def render(self) -> list[str]:
        allowed = 1 - self.min_domain_mass
        verdict = "refused: more than" if self.new_share > allowed + 1e-9 else "passes: within"
        lines = [
            f"  {self.feature}: {len(self.new_values)} new value(s) in "
            f"{self.new_share:.1%} of its rows ({verdict} the {allowed:.0%} the schema "
            "lets through unseen)"
        ]
        lines += [
            f"    + {value!r}  {n} rows ({n / max(self.rows_with_value, 1):.1%})"
            for value, n in self.new_values
        ]
        return lines


@dataclasses.dataclass
class SchemaDiff:
    span_file: Location
    rows: int
    domains: list[DomainChange]
    empty_required: dict[str, int]  # feature -> rows without a value

    def render(self, schema_path: Path) -> str:
        lines = [f"{self.span_file} ({self.rows} rows) against {schema_path}:"]
        if not self.domains and not self.empty_required:
            lines.append("  nothing to accept: every value is in the schema's domains")
        for change in self.domains:
            lines += change.render()
        for feature, n in sorted(self.empty_required.items()):
            lines.append(
                f"  {feature}: {n} rows without a value, but every row needs one "
                "(not accepted by this command: the model reads it as always "
                "present; see required=True in models/features.py)"
            )
        return "\n".join(lines)


def load(path: Path = SCHEMA_PATH):
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    return text_format.Parse(path.read_text(), schema_pb2.Schema())


def _domains(schema) -> dict[str, tuple]:
    """Feature name -> (feature, its string domain, global or inline), for live features."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    global_domains = {d.name: d for d in schema.string_domain}
    domains = {}
    for feature in schema.feature:
        if feature.lifecycle_stage == schema_pb2.DEPRECATED:
            continue
        if feature.HasField("domain") and feature.domain in global_domains:
            domains[feature.name] = (feature, global_domains[feature.domain])
        elif feature.HasField("string_domain"):
            domains[feature.name] = (feature, feature.string_domain)
    return domains


def diff(schema, span_file: Location) -> SchemaDiff:
    """What `span_file` (a prepared span's CSV) has that `schema` does not accept."""
    with storage.open_text(span_file) as f:
        rows = list(csv.DictReader(f))
    changes = []
    for name, (feature, domain) in _domains(schema).items():
        values = collections.Counter(r[name] for r in rows if r.get(name))
        known = set(domain.value)
        new = sorted(
            ((v, n) for v, n in values.items() if v not in known),
            key=lambda item: (-item[1], item[0]),
        )
        if new:
            changes.append(
                DomainChange(
                    name,
                    new,
                    sum(values.values()),
                    feature.distribution_constraints.min_domain_mass,
                )
            )
    empty = {
        feature: n
        for feature in REQUIRED_VALUES
        if (n := sum(1 for r in rows if not r.get(feature)))
    }
    return SchemaDiff(span_file, len(rows), changes, empty)


def accept(schema, changes: Sequence[DomainChange]) -> None:
    """Adds exactly the changes' new values to their domains, in place."""
    domains = _domains(schema)
    for change in changes:
        _, domain = domains[change.feature]
        domain.value.extend(sorted(v for v, _ in change.new_values))


def write(schema, path: Path) -> None:
    from google.protobuf import text_format

    path.write_text(text_format.MessageToString(schema))


def _newest_span(spans_dir: Location) -> int | None:

    return max(
        (
            span
            for span, directory in prepare.span_dirs(spans_dir).items()
            if (directory / prepare.SPAN_FILE_NAME).is_file()
        ),
        default=None,
    )


def review_command(data_root: str, schema_path: str, span: int | str, action: str = "diff") -> str:
    """The command that shows (`diff`) or writes (`accept`) what accepting
    `span` changes in the schema, with the paths the run used: a user with
    their own data folder or schema must not review the bundled ones."""
    paths = [
        (configs.flag(name), path if configs.is_remote(path) else os.path.abspath(path))
        for name, path in (("data_root", data_root), ("schema_path", schema_path))
    ]
    return f"python -m data.schema {action} --span {span} " + " ".join(
        f"{flag} {shlex.quote(path)}" for flag, path in paths
    )


def _evolve(
    command: str, requested_span: int | None, spans_dir: Location, schema_path: Path
) -> int:

    span = requested_span or _newest_span(spans_dir)
    span_file = prepare.span_dir(spans_dir, span or 0) / prepare.SPAN_FILE_NAME
    if not span_file.is_file():
        print(
            f"error: no prepared span at {span_file} (python -m data.prepare, or run the "
            "pipeline once)",
            file=sys.stderr,
        )
        return 1
    schema = load(schema_path)
    found = diff(schema, span_file)
    print(found.render(schema_path))
    if command == "accept" and found.domains:
        accept(schema, found.domains)
        write(schema, schema_path)
        added = sum(len(c.new_values) for c in found.domains)
        print(
            f"wrote {schema_path}: {added} value(s) added to "
            f"{', '.join(c.feature for c in found.domains)}; review `git diff` and commit "
            "it with the reason, then run the pipeline again"
        )
    return 0


def _bootstrap(spans: Sequence[int], spans_dir: Location, schema_path: Path) -> int:

    files = [prepare.span_dir(spans_dir, s) / prepare.SPAN_FILE_NAME for s in spans]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        print(
            f"error: no prepared span at {', '.join(missing)} "
            "(python -m data.prepare, or run the pipeline once)",
            file=sys.stderr,
        )
        return 1
    import tensorflow_data_validation as tfdv

    schema = bootstrap(files)
    schema_path.parent.mkdir(parents=True, exist_ok=True)
    tfdv.write_schema_text(schema, str(schema_path))
    print(f"wrote {schema_path} from spans {spans}; review `git diff` before committing")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from settings.configs import PipelineConfig

    parser = argparse.ArgumentParser(
        prog="python -m data.schema",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = argparse.ArgumentParser(add_help=False)
    # The prepared spans and the curated schema: the pipeline's own settings.
    PipelineConfig.add_arguments(common, names=("data_root", "schema_path"))
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("diff", "show what accepting a span would change in the schema"),
        ("accept", "write that change into the schema, for review in git"),
    ):
        command = commands.add_parser(name, parents=[common], help=text, description=text)
        command.add_argument(
            "--span",
            type=int,
            default=None,
            help="span number (YYYYMMDD); default: the newest prepared",
        )
    bootstrap_command = commands.add_parser(
        "bootstrap",
        parents=[common],
        help="re-infer the schema from known-good spans",
        description="Infer the schema with TFDV from known-good spans (the first is "
        "inferred from, the others widen the domains) and curate it.",
    )
    bootstrap_command.add_argument(
        "--spans", type=int, nargs="+", required=True, help="span numbers (YYYYMMDD)"
    )
    args = parser.parse_args(argv)
    try:
        config = PipelineConfig.from_args(args)
    except ValueError as error:
        parser.error(str(error))
    spans_dir, schema_path = storage.location(config.data_root), Path(config.schema_path)
    if args.command == "bootstrap":
        return _bootstrap(args.spans, spans_dir, schema_path)
    return _evolve(args.command, args.span, spans_dir, schema_path)


if __name__ == "__main__":
    sys.exit(main())
