"""All pipeline settings in one typed config, grouped by who reads them.

Every field has a default that works on a laptop. Each can be overridden by an
environment variable `CFPB_<FIELD>` (e.g. `CFPB_TRAIN_STEPS=500`) and then by
a command's flag `--<field-with-dashes>`; `parse_args` applies both, so every
command offers the same options with the same meaning.

Each setting is declared once, in the group of the code that reads it:
`GraphSettings` (what shapes the compiled graph), `DataSettings`,
`StoreSettings`, `ServingSettings`, `ReportSettings`, `AirflowSettings`,
`KubeflowSettings`. `PipelineConfig` is their union, for the one parser; code
that needs one group takes that group's type (`pipeline.create_pipeline`
takes `GraphSettings`, `config.graph()` gives exactly them).

Paths default to folders inside the repository checkout (`build/`,
`serving_model/`), never to a home directory; the location settings also take
`gs://` URIs (docs/object-store.md; `s3://` is refused there, with the reason).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shlex
import typing
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

# The folder holding the project's packages: the checkout, or site-packages
# after a non-editable install (where the bundled exports and the curated
# schema are package data). Defaults never depend on the current directory.
REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "CFPB_"
# The curated schema (package data): ImportSchemaGen's default and what
# `python -m data.schema accept` writes.
CURATED_SCHEMA = REPO_ROOT / "data" / "curated_schema.pbtxt"
# The two bundled CFPB exports (package data): the default raw data folder.
BUNDLED_EXPORTS = REPO_ROOT / "data" / "raw"


# Where the components' Beam work can run (settings/beam.py turns each into
# Beam options). Dataflow and Spark take --beam-pipeline-args (docs/flink.md).
BEAM_RUNNERS = ("direct", "flink")
# The placeholder in an input pattern that TFX's ExampleGen driver replaces
# with a span number, optionally with a width: {SPAN} or {SPAN:8}
# (tfx.components.example_gen.utils.SPAN_SPEC and SPAN_FULL_REGEX).
SPAN_SPEC = "{SPAN}"
_SPAN_PLACEHOLDER = re.compile(r"\{SPAN(:[^}]*)?\}")


def picks_span(input_pattern: str) -> bool:
    """Whether ExampleGen can pick a span among the files the pattern matches."""
    return bool(_SPAN_PLACEHOLDER.search(input_pattern))


def is_remote(path: str) -> bool:
    """A URI (gs://, s3://, ...) rather than a local path: the one rule for that."""
    return "://" in path


# The location settings a run writes (TFX's pipeline root, the Pusher's
# folder): runners check them, with preparation's, before anything starts.
OUTPUT_LOCATIONS = ("pipeline_root", "serving_model_dir")


def flag(name: str) -> str:
    """The command-line flag of setting `name` (data_root -> --data-root)."""
    return "--" + name.replace("_", "-")


def _build(*parts: str) -> str:
    return str(REPO_ROOT.joinpath("build", *parts))


@dataclasses.dataclass
class GraphSettings:
    """What shapes the compiled graph. `pipeline.create_pipeline` reads these and
    nothing else, and Airflow's recompile check hashes exactly these."""

    pipeline_name: str = dataclasses.field(
        default="cfpb-disputes", metadata={"help": "pipeline name, also the MLMD pipeline context"}
    )
    model_name: str = dataclasses.field(
        default="cfpb_disputes",
        metadata={"help": "model name under the serving directory (TF Serving's model name)"},
    )
    data_root: str = dataclasses.field(
        default=_build("data", "spans"),
        metadata={
            "help": "prepared spans (span-<YYYYMMDD>/complaints.csv) that CsvExampleGen reads"
        },
    )
    input_pattern: str = dataclasses.field(
        default=f"span-{SPAN_SPEC}/*.csv",
        metadata={
            "help": "files CsvExampleGen reads under the data root; {SPAN} makes TFX's "
            "ExampleGen driver pick the span"
        },
    )
    span: int | None = dataclasses.field(
        default=None,
        metadata={
            "help": "span CsvExampleGen ingests (YYYYMMDD, e.g. to backfill an older "
            "export); default: the newest"
        },
    )
    train_window_spans: int = dataclasses.field(
        default=3,
        metadata={
            "help": "Transform and Trainer read the newest N spans that passed validation "
            "(this run's included); the Evaluator judges on their eval rows"
        },
    )
    schema_path: str = dataclasses.field(
        default=str(CURATED_SCHEMA),
        metadata={
            "help": "curated schema that ImportSchemaGen imports (python -m data.schema "
            "re-bootstraps it)"
        },
    )
    infer_schema: bool = dataclasses.field(
        default=False,
        metadata={
            "help": "infer the schema from each span with SchemaGen instead of importing "
            "the curated one"
        },
    )
    drift_blocks: bool = dataclasses.field(
        default=False,
        metadata={
            "help": "stop the run when a feature drifts beyond its schema threshold "
            "against the previous run's statistics (default: report only)"
        },
    )
    pipeline_root: str = dataclasses.field(
        default=_build("pipeline_root"), metadata={"help": "where components write artifacts"}
    )
    serving_model_dir: str = dataclasses.field(
        default=str(REPO_ROOT / "serving_model"),
        metadata={"help": "Pusher writes <this>/<model_name>/<version>/ (TF Serving layout)"},
    )
    train_steps: int = dataclasses.field(default=2000, metadata={"help": "training steps"})
    eval_steps: int = dataclasses.field(
        default=100, metadata={"help": "batches of the validation split per validation"}
    )
    validate_every_steps: int = dataclasses.field(
        default=100, metadata={"help": "training steps between validations"}
    )
    early_stopping_patience: int = dataclasses.field(
        # Without it the book's network overfits its few thousand rows within
        # ~300 steps: at 2,000 steps eval AUC 0.55, log loss 0.89-1.06 against
        # the base rate's 0.47 (docs/benchmarks.md, stop 50's note).
        default=3,
        metadata={
            "help": "validations without a lower validation loss before training stops and "
            "keeps the best weights (0: train every step, keep the last)"
        },
    )
    batch_size: int = dataclasses.field(default=64, metadata={"help": "training batch size"})
    learning_rate: float = dataclasses.field(default=1e-3, metadata={"help": "Adam learning rate"})
    seed: int = dataclasses.field(
        default=42,
        metadata={"help": "random seed for weight init and shuffling (reproducible runs)"},
    )
    min_auc: float = dataclasses.field(
        # Below every honest model (complaints with an observed outcome: logistic
        # regression 0.585-0.607, this model 0.58 on 2014+2015), clearly above
        # chance (about 3.5 standard errors at ~3,000 eval rows). The old
        # 0.6 was set when open complaints made AUC easy (data/README.md).
        default=0.55,
        metadata={"help": "Evaluator blesses a model only if eval AUC is at least this"},
    )
    decision_threshold: float = dataclasses.field(
        # About the share of disputed complaints (16-19% in 2014-2015): at 0.5
        # this model flags almost none, so precision and recall there are empty.
        default=0.2,
        metadata={
            "help": "probability from which a complaint counts as predicted disputed: "
            "precision, recall and accuracy are reported at it"
        },
    )
    max_auc_regression: float = dataclasses.field(
        default=0.0,
        metadata={"help": "how much lower than the blessed baseline's AUC a new model may be"},
    )
    private_training: bool = dataclasses.field(
        default=False,
        metadata={
            "help": "train with differentially private SGD (TF Privacy's DP Keras Adam: each "
            "example's gradient clipped to --dp-l2-norm-clip, Gaussian noise of "
            "--dp-noise-multiplier times that added); epsilon is accounted and recorded "
            "(docs/privacy.md)"
        },
    )
    dp_noise_multiplier: float = dataclasses.field(
        default=1.1,
        metadata={"help": "private training: noise standard deviation over the clipping norm"},
    )
    dp_l2_norm_clip: float = dataclasses.field(
        # Measured (docs/privacy.md): at 1.0 most disputed complaints' gradients
        # are clipped and few others', which pulls every prediction toward "not
        # disputed" (mean probability 0.03 at a 17% base rate, log loss worse
        # than the base rate's); at 5.0 the probabilities keep the base rate.
        default=5.0,
        metadata={"help": "private training: largest L2 norm of one microbatch's gradient"},
    )
    dp_microbatches: int | None = dataclasses.field(
        default=None,
        metadata={
            "help": "private training: microbatches per batch, each clipped as one (must "
            "divide the batch size; unset: the batch size, every example its own)"
        },
    )
    dp_delta: float = dataclasses.field(
        default=1e-5,
        metadata={
            "help": "private training: the delta epsilon is stated at (must be below 1 / "
            "the training rows, checked before training)"
        },
    )
    max_epsilon: float | None = dataclasses.field(
        default=None,
        metadata={
            "help": "privacy budget: a model whose epsilon is above this is not blessed (a "
            "model trained without --private-training has no bound); unset: no budget"
        },
    )
    compare_with_baseline: bool = dataclasses.field(
        default=True,
        metadata={
            "help": "resolve baselines from earlier runs: the latest blessed model for the "
            "Evaluator, the latest statistics for drift (needs an orchestrator "
            "that runs TFX resolvers; open-source KFP v2 does not)"
        },
    )
    enable_cache: bool = dataclasses.field(
        default=True, metadata={"help": "reuse outputs of components whose inputs did not change"}
    )
    beam_runner: str = dataclasses.field(
        default="direct",
        metadata={
            "help": "where the components' Beam work runs: 'direct' (Beam's DirectRunner, in "
            "the process running the component) or 'flink' (a Flink cluster through Beam's "
            "job server: scripts/flink.sh, docs/flink.md)"
        },
    )
    beam_job_endpoint: str = dataclasses.field(
        default="127.0.0.1:8099",
        metadata={
            "help": "HOST:PORT of Beam's Flink job server (with --beam-runner=flink); "
            "scripts/flink.sh start writes its address to build/flink/env.sh"
        },
    )
    beam_parallelism: int = dataclasses.field(
        default=2,
        metadata={
            "help": "parallelism of every Beam job on Flink (at most the cluster's task slots)"
        },
    )
    beam_sdk_boot: str = dataclasses.field(
        default=str(REPO_ROOT / ".flink" / "bin" / "boot"),
        metadata={
            "help": "Beam's Python SDK boot program, a path on the TaskManagers' machines: "
            "they start each Python worker with it (Beam's PROCESS environment) in an "
            "environment that has the pipeline installed (scripts/flink.sh install builds it)"
        },
    )
    beam_pipeline_args: list[str] = dataclasses.field(
        default_factory=list,
        metadata={
            "help": "more Beam options, one string, after the ones the settings above give "
            "(a later option wins), e.g. '--direct_running_mode=multi_processing "
            "--direct_num_workers=2'"
        },
    )

    def __post_init__(self) -> None:
        if self.beam_runner not in BEAM_RUNNERS:
            raise ValueError(
                f"setting beam_runner: {self.beam_runner!r} is not one of {', '.join(BEAM_RUNNERS)}"
            )
        if self.span is not None and not picks_span(self.input_pattern):
            # ExampleGen would read every file the pattern matches and call it
            # one span: the asked span would silently not be the one trained on.
            raise ValueError(
                f"setting span: {self.span} cannot be picked, input_pattern "
                f"{self.input_pattern!r} has no {SPAN_SPEC} (leave --span out to read "
                "what the pattern matches)"
            )
        if self.validate_every_steps <= 0:
            raise ValueError(
                f"setting validate_every_steps: {self.validate_every_steps} must be positive"
            )
        if self.early_stopping_patience < 0:
            raise ValueError(
                f"setting early_stopping_patience: {self.early_stopping_patience} must be 0 "
                "(off) or more"
            )
        self._check_private_training()

    def _check_private_training(self) -> None:
        """The DP settings' rules that need no data (dp_delta's bound needs the
        training rows: models/private_training.py checks it before training)."""
        positive = {
            "dp_noise_multiplier": self.dp_noise_multiplier,
            "dp_l2_norm_clip": self.dp_l2_norm_clip,
            "max_epsilon": self.max_epsilon,
        }
        for name, value in positive.items():
            if value is not None and not value > 0:
                raise ValueError(f"setting {name}: {value} must be positive")
        if self.dp_microbatches is not None and (
            self.dp_microbatches <= 0 or self.batch_size % self.dp_microbatches
        ):
            raise ValueError(
                f"setting dp_microbatches: {self.dp_microbatches} does not divide the batch "
                f"size {self.batch_size} (each batch is cut into equal microbatches)"
            )
        if not 0 < self.dp_delta < 1:
            raise ValueError(f"setting dp_delta: {self.dp_delta} must be between 0 and 1")

    @property
    def model_dir(self) -> str:
        """Where the Pusher writes the model's versions: <serving_model_dir>/<model_name>."""
        return os.path.join(self.serving_model_dir, self.model_name)


@dataclasses.dataclass
class DataSettings:
    """Where exports come from and how they become spans: read by preparation
    (the runners before the graph, Airflow's prepare task, `python -m data.prepare`)."""

    raw_data_dir: str = dataclasses.field(
        default=str(BUNDLED_EXPORTS),
        metadata={
            "help": "CFPB exports (.csv/.csv.gz); each becomes span YYYYMMDD, the day of "
            "its newest complaint"
        },
    )
    max_rows_per_span: int | None = dataclasses.field(
        default=None,
        metadata={"help": "keep at most this many rows per span (evenly spaced), for quick runs"},
    )


@dataclasses.dataclass
class StoreSettings:
    """Where ML Metadata lives: read by the runners, every task and every reader."""

    metadata_path: str = dataclasses.field(
        default=_build("metadata", "metadata.sqlite"),
        metadata={"help": "SQLite ML Metadata file (used unless --mysql-host is set)"},
    )
    metadata_grpc: str | None = dataclasses.field(
        default=None,
        metadata={
            "help": "use ML Metadata through this gRPC service (HOST:PORT) instead of "
            "SQLite/MySQL, e.g. a Kubeflow cluster's, port-forwarded"
        },
    )
    mysql_host: str | None = dataclasses.field(
        default=None, metadata={"help": "use ML Metadata on this MySQL server instead of SQLite"}
    )
    mysql_port: int = dataclasses.field(default=3306, metadata={"help": "MySQL port"})
    mysql_database: str = dataclasses.field(
        default="mlmd", metadata={"help": "MySQL database for ML Metadata"}
    )
    mysql_user: str = dataclasses.field(default="mlmd", metadata={"help": "MySQL user"})
    mysql_password_file: str | None = dataclasses.field(
        default=None,
        metadata={"help": "file holding the MySQL password (or set CFPB_MYSQL_PASSWORD)"},
    )

    @property
    def uses_mysql(self) -> bool:
        return bool(self.mysql_host)

    def mysql_password(self, environ: Mapping[str, str] = os.environ) -> str:
        """The MySQL password, from a file or the environment, never from flags."""
        if self.mysql_password_file:
            return Path(self.mysql_password_file).read_text().strip()
        return environ.get(f"{ENV_PREFIX}MYSQL_PASSWORD", "")


@dataclasses.dataclass
class ServingSettings:
    """Serving and the feedback loop: request logs, skew checks."""

    prediction_log_prefix: str = dataclasses.field(
        default=_build("prediction_logs", "predictions"),
        metadata={
            "help": "logged requests: <this>-*.tfrecord of TF Serving PredictionLog records "
            "(written by feedback.logging_proxy, read by feedback.skew and feedback.join)"
        },
    )
    skew_window_days: int = dataclasses.field(
        default=7,
        metadata={"help": "feedback.skew compares the requests logged in the last N days"},
    )
    skew_blocks: bool = dataclasses.field(
        default=False,
        metadata={
            "help": "feedback.skew exits with status 4 when a feature's training/serving skew "
            "is beyond its schema threshold (default: report only, as for drift)"
        },
    )


@dataclasses.dataclass
class ReportSettings:
    """Where run reports go."""

    report_dir: str = dataclasses.field(
        default=_build("reports"),
        metadata={"help": "run reports go to <this>/<pipeline_name>/ (python -m reporting.report)"},
    )


@dataclasses.dataclass
class TrackingSettings:
    """Where runs are mirrored for teams that look in MLflow (docs/mlflow.md)."""

    mlflow_tracking_uri: str | None = dataclasses.field(
        default=None,
        metadata={
            "help": "MLflow tracking server (http://HOST:PORT) every run is mirrored into "
            "after it ends, with the registry following what is served; unset: no mirror "
            "(python -m tracking.mlflow_mirror mirrors later)"
        },
    )


@dataclasses.dataclass
class AirflowSettings:
    """Read only by the Airflow runner and its DAG."""

    airflow_schedule: str | None = dataclasses.field(
        default=None,
        metadata={"help": "Airflow schedule (cron or preset such as '@weekly'); unset: manual"},
    )
    airflow_start_date: str = dataclasses.field(
        default="2026-01-01", metadata={"help": "Airflow DAG start date (YYYY-MM-DD)"}
    )
    airflow_retries: int = dataclasses.field(
        default=1, metadata={"help": "Airflow retries per task"}
    )
    airflow_tags: list[str] = dataclasses.field(
        default_factory=lambda: ["tfx", "cfpb"],
        metadata={"help": "Airflow DAG tags, one string, space separated"},
    )
    airflow_compiled: str | None = dataclasses.field(
        default=None,
        metadata={
            "help": "compiled pipeline the Airflow DAG reads (written by "
            "runners/airflow_runner.py); default build/<pipeline_name>.airflow.json"
        },
    )


@dataclasses.dataclass
class KubeflowSettings:
    """Read only by the Kubeflow compiler."""

    kubeflow_image: str | None = dataclasses.field(
        default=None,
        metadata={
            "help": "container image every Kubeflow task runs, built from the Dockerfile and "
            "pushed where the cluster pulls from (REGISTRY/cfpb-tfx-pipeline-task:TAG); "
            "required to compile"
        },
    )
    # Measured with the stand-in's per-task peak memory (docs/kubeflow.md): on
    # the parity slice every task peaks at 0.8-1.3 GB (importing TensorFlow
    # alone is 0.8); the default leaves room for the full exports.
    kubeflow_task_cpu: float = dataclasses.field(
        default=1.0,
        metadata={"help": "CPU cores each Kubeflow task requests"},
    )
    kubeflow_task_memory_gb: float = dataclasses.field(
        default=4.0,
        metadata={
            "help": "memory each Kubeflow task requests and may not exceed, in GB "
            "(Kubernetes kills a task above it)"
        },
    )
    kubeflow_output: str | None = dataclasses.field(
        default=None,
        metadata={"help": "compiled KFP YAML path; default build/<pipeline_name>.yaml"},
    )
    kubeflow_target: str = dataclasses.field(
        default="oss",
        metadata={
            "help": "'oss' (open-source KFP 2.5+: each task runs one TFX node against "
            "the cluster's ML Metadata; the full graph) or 'vertex' (TFX's "
            "Vertex AI spec; no drift baseline there)"
        },
    )
    kubeflow_metadata_grpc: str | None = dataclasses.field(
        default=None,
        metadata={
            "help": "HOST:PORT of the ML Metadata gRPC service the 'oss' tasks use; "
            "unset, each task reads METADATA_GRPC_SERVICE_HOST/_PORT, which KFP gives "
            "every pod (the metadata-grpc-configmap)"
        },
    )


# The groups in the order --help shows them.
SETTINGS_GROUPS = (
    GraphSettings,
    DataSettings,
    StoreSettings,
    ServingSettings,
    ReportSettings,
    TrackingSettings,
    AirflowSettings,
    KubeflowSettings,
)


@dataclasses.dataclass
class PipelineConfig(
    KubeflowSettings,
    AirflowSettings,
    TrackingSettings,
    ReportSettings,
    ServingSettings,
    StoreSettings,
    DataSettings,
    GraphSettings,
):
    """Every setting: the union of the groups above, so that one parser (flags
    and `CFPB_*` variables) serves every command. Code that needs one group
    takes that group's type."""

    def graph(self) -> GraphSettings:
        """Only the settings that shape the graph."""
        return GraphSettings(
            **{field.name: getattr(self, field.name) for field in dataclasses.fields(GraphSettings)}
        )

    def changed_settings(self) -> dict[str, str]:
        """Each setting that differs from its default, as the text its flag
        and its environment variable take (the inverse of parsing them)."""
        changed = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value != _default_value(field):
                changed[field.name] = _format(value)
        return changed

    def as_flags(self) -> list[str]:
        """The command line that gives a runner (or any command taking the
        config's flags) this config; unchanged settings are left out."""
        flags = []
        for name, text in self.changed_settings().items():
            flag = name.replace("_", "-")
            if isinstance(getattr(self, name), bool):
                flags.append(f"--{flag}" if getattr(self, name) else f"--no-{flag}")
            else:
                flags.append(f"--{flag}={text}")
        return flags

    def as_env(self) -> dict[str, str]:
        """The CFPB_* environment that gives this config, for what reads settings
        only from the environment (the Airflow DAG file)."""
        return {ENV_PREFIX + name.upper(): text for name, text in self.changed_settings().items()}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, **overrides) -> PipelineConfig:
        values = {}
        for field in dataclasses.fields(cls):
            raw = environ.get(ENV_PREFIX + field.name.upper())
            if raw is not None:
                values[field.name] = _parse(field, raw)
        values.update(overrides)
        return cls(**values)

    @classmethod
    def add_arguments(
        cls, parser: argparse.ArgumentParser, names: Collection[str] | None = None
    ) -> None:
        """Adds one flag per setting (or per setting in `names`, for a command
        that reads only those); unset flags keep the environment/default value."""
        unknown = set(names or ()) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"no such settings: {', '.join(sorted(unknown))}")
        for settings_group in SETTINGS_GROUPS:
            cls._add_group_arguments(parser, settings_group, names)

    @classmethod
    def _add_group_arguments(
        cls,
        parser: argparse.ArgumentParser,
        settings_group: type,
        names: Collection[str] | None,
    ) -> None:
        fields = [f for f in dataclasses.fields(settings_group) if names is None or f.name in names]
        if not fields:
            return
        title = (settings_group.__doc__ or settings_group.__name__).split("\n")[0].strip()
        group = parser.add_argument_group(
            f"{title} (each also read from the environment as CFPB_<NAME>)"
        )
        for field in fields:
            option = flag(field.name)
            default = _default(field)
            help_text = f"{field.metadata['help']} (default: {default})"
            if _base_type(field) is bool:
                group.add_argument(
                    option,
                    dest=field.name,
                    default=None,
                    action=argparse.BooleanOptionalAction,
                    help=help_text,
                )
            else:
                group.add_argument(
                    option,
                    dest=field.name,
                    default=None,
                    metavar=field.name.upper(),
                    help=help_text,
                )

    @classmethod
    def from_args(
        cls, args: argparse.Namespace, environ: Mapping[str, str] = os.environ
    ) -> PipelineConfig:
        overrides = {}
        for field in dataclasses.fields(cls):
            value = getattr(args, field.name, None)
            if value is not None:
                overrides[field.name] = value if isinstance(value, bool) else _parse(field, value)
        return cls.from_env(environ, **overrides)


def _field_type(field: dataclasses.Field):
    # Annotations are strings under `from __future__ import annotations`.
    return typing.get_type_hints(PipelineConfig)[field.name]


def _is_optional(field: dataclasses.Field) -> bool:
    return type(None) in typing.get_args(_field_type(field))


def _base_type(field: dataclasses.Field) -> type:
    kind = _field_type(field)
    if _is_optional(field):
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    return typing.get_origin(kind) or kind


def _default_value(field: dataclasses.Field):
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def _default(field: dataclasses.Field):
    """The default as --help shows it."""
    value = _default_value(field)
    return shlex.join(value) if isinstance(value, list) else value


def _format(value) -> str:
    """A setting's value as flag/environment text; `_parse` reads it back."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return shlex.join(value)
    return str(value)


def _parse(field: dataclasses.Field, raw: str):
    kind = _base_type(field)
    if raw == "" and _is_optional(field):
        return None
    try:
        if kind is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind is list:
            return shlex.split(raw)
        return kind(raw)
    except ValueError:
        raise ValueError(f"setting {field.name}: {raw!r} is not a valid {kind.__name__}") from None


def parse_args(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None = None,
    names: Collection[str] | None = None,
    environ: Mapping[str, str] = os.environ,
) -> tuple[PipelineConfig, argparse.Namespace]:
    """Adds the settings' flags to a command's parser (every setting, or the
    ones in `names` that the command reads) and parses its command line. The
    settings without a flag still come from `CFPB_*` variables or defaults."""
    PipelineConfig.add_arguments(parser, names)
    args = parser.parse_args(argv)
    try:
        return PipelineConfig.from_args(args, environ), args
    except ValueError as e:
        parser.error(str(e))
