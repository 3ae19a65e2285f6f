"""The configuration and command-line flags every exactly-once job has; a job extends them.

A job's config is a subclass of `JobConfig` with its own fields, its parser adds
`add_source_arguments` and `add_run_arguments` to its own flags, and `job_arguments` turns the
parsed flags into JobConfig's fields:

    config = MyConfig(**job_arguments(args), my_flag=args.my_flag)
"""

import argparse
from dataclasses import dataclass, field
from typing import Any, Optional

from sinks.database import add_connection_arguments, jdbc_to_params

__all__ = [
    "JobConfig",
    "add_run_arguments",
    "add_source_arguments",
    "duration",
    "job_arguments",
    "key_value",
    "parse_duration_ms",
]


@dataclass
class JobConfig:
    input: Optional[str]  # files; None with source="kafka"
    db_url: str
    db_user: Optional[str] = None
    password_env: str = "PGPASSWORD"
    password_file: Optional[str] = None  # replaces password_env (--password-file)
    parallelism: int = 2
    checkpoint_interval: Optional[str] = None  # default: flink-conf/config.yaml
    checkpoint_dir: Optional[str] = None  # default: var/checkpoints/<sink_id_prefix>
    watch: Optional[str] = None  # e.g. "5 s": keep discovering files
    from_checkpoint: Optional[str] = None  # a retained checkpoint or a savepoint
    savepoint_dir: Optional[str] = None  # where `stop_with_savepoint` writes
    execution_mode: str = "process"
    state_backend: Optional[str] = None  # hashmap | rocksdb
    # checkpoint: one sink for all the job's tables, each checkpoint one transaction;
    # subtask: one sink per table, each subtask's checkpoint its own transaction.
    commit_scope: str = "checkpoint"
    # The job's sink ids start with it; a job's config gives its own default.
    sink_id_prefix: str = "job"
    sink_batch_size: Optional[int] = None  # default: the job's
    # Controls only (the fault campaign's, `tests.harness.campaign_job --at-least-once`): every
    # sink of the job in at-least-once mode, so that a tool can ask it of any job without
    # knowing how the job builds its sinks.
    at_least_once: bool = False
    # A row the database refuses (e.g. a constraint added to a table) is recorded in
    # tpc_dead_letters and the job goes on: one line must never stop the work of a day.
    on_row_error: str = "dead_letter"
    bundle_size: Optional[int] = None  # default: BUNDLE_LINES worth of records
    batch_lines: Optional[int] = 500  # lines per record into Python; None: 1
    source: str = "files"  # files | kafka
    bootstrap_servers: Optional[str] = None  # kafka: HOST:PORT[,HOST:PORT]
    topic: Optional[str] = None
    group_id: Optional[str] = None  # default: the sink id prefix
    starting_offsets: str = "earliest"  # earliest | latest | committed
    # kafka, no checkpoint: partition -> next offset, from the database (running.start_of_run)
    resume_offsets: dict[int, int] = field(default_factory=dict)
    bounded: bool = False  # kafka: stop at the end offsets at start
    # kafka: the consumer's own properties (security, fetch sizes), over the source's defaults
    kafka_properties: dict[str, str] = field(default_factory=dict)
    # Flink keys for this run (`-D KEY=VALUE`), over flink-conf/config.yaml and the flags
    extra_settings: dict[str, str] = field(default_factory=dict)
    # Seconds between progress lines while the command waits (jobs/progress.py); default 2 on
    # a terminal, 10 otherwise.
    progress_interval: Optional[float] = None
    # A local run: serve Flink's and the sinks' metrics to Prometheus on this port, or the first
    # free one of a range "9260-9269" (off by default; a cluster's processes always serve theirs).
    metrics_port: Optional[str] = None
    # How long the sinks keep their commit-log rows, e.g. "2 min" (default: the sink's, 7 days).
    # Shorter for a soak, whose commit log must reach its plateau within the run.
    commit_log_retention: Optional[str] = None

    def commit_log_retention_hours(self) -> Optional[float]:
        """`commit_log_retention` in hours, as the sink builder takes it (None: its default)."""
        if not self.commit_log_retention:
            return None
        return parse_duration_ms(self.commit_log_retention) / 3_600_000


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """--source, --input (and --watch) for files, and the --source kafka group."""
    parser.add_argument(
        "--source",
        choices=["files", "kafka"],
        default="files",
        help="read --input's files, or a Kafka topic",
    )
    parser.add_argument("--input", help="directory of JSON-lines files")
    parser.add_argument(
        "--watch",
        nargs="?",
        const="5 s",
        metavar="INTERVAL",
        help="keep discovering new files (default interval 5 s)",
    )
    kafka = parser.add_argument_group("--source kafka")
    kafka.add_argument("--bootstrap-servers", metavar="HOST:PORT[,HOST:PORT]")
    kafka.add_argument("--topic")
    kafka.add_argument(
        "--group-id",
        help="consumer group for the informative offset commits (default: --sink-id-prefix)",
    )
    kafka.add_argument(
        "--starting-offsets",
        choices=["earliest", "latest", "committed"],
        default="earliest",
        help="where a job without restored state starts a partition the database has no "
        "position for; a restored job continues from its checkpoint's offsets",
    )
    kafka.add_argument(
        "--bounded",
        action="store_true",
        help="stop at the partitions' end offsets as of the start (default: run until cancelled)",
    )
    kafka.add_argument(
        "--kafka-property",
        dest="kafka_properties",
        action="append",
        type=kafka_property,
        default=[],
        metavar="KEY=VALUE",
        help="a Kafka consumer property, repeatable: security (security.protocol=SSL, "
        "ssl.truststore.location=...), fetch sizes (fetch.min.bytes, max.poll.records); "
        f"not {', '.join(sorted(KAFKA_PROPERTIES_OWNED))}, which the job sets itself",
    )
    kafka.add_argument(
        "--kafka-properties-file",
        metavar="PATH",
        help="Kafka consumer properties, one KEY=VALUE a line (# comments), as Kafka's own "
        "tools take them: the place for secrets (sasl.jaas.config, key passwords), which a "
        "command line would show to every user of the machine; --kafka-property wins",
    )


# The commit scope's help when the job gives none of its own words for its tables.
COMMIT_SCOPE_HELP = (
    "checkpoint: every table in one sink, one transaction per checkpoint (atomic); "
    "subtask: one sink per table, one transaction per subtask and checkpoint"
)


def add_run_arguments(
    parser: argparse.ArgumentParser,
    sink_id_prefix: str,
    commit_scope_help: str = COMMIT_SCOPE_HELP,
    commit_scopes: tuple[str, ...] = ("checkpoint", "subtask"),
) -> None:
    """The database, the parallelism, checkpoints and savepoints, progress lines, the Python
    execution mode, the state backend, the commit scope (of `commit_scopes`, those the job
    builds) and the sink ids' prefix (the job's default: `sink_id_prefix`)."""
    add_connection_arguments(parser, required=False)
    parser.add_argument("--parallelism", type=int, default=2)
    parser.add_argument("--checkpoint-interval", help="e.g. '2 s' (default: flink-conf)")
    parser.add_argument("--checkpoint-dir")
    parser.add_argument(
        "--from-checkpoint",
        "--from-savepoint",
        metavar="PATH",
        dest="from_checkpoint",
        help="start from a savepoint (see --savepoint-dir) or a retained "
        "checkpoint (its chk-N directory); the sinks refuse one older "
        "than what they already committed",
    )
    parser.add_argument(
        "--savepoint-dir",
        metavar="DIR",
        help="on SIGTERM or Ctrl-C, stop the job with a savepoint in DIR and "
        "print its path (the way to upgrade the job's code)",
    )
    parser.add_argument(
        "--progress-interval",
        type=float,
        metavar="SECONDS",
        help="seconds between progress lines while the job runs (default: 2 on a terminal, "
        "rewritten in place; 10 otherwise)",
    )
    parser.add_argument(
        "--metrics-port",
        type=metrics_port,
        metavar="PORT[-PORT]",
        help="serve the job's metrics (Flink's and the sinks') to Prometheus at "
        "http://HOST:PORT/metrics while it runs locally, on PORT or the first free port of a "
        "range (default: off; a cluster's processes serve theirs, see flink-conf/config.yaml)",
    )
    parser.add_argument(
        "--mode",
        dest="execution_mode",
        default="process",
        choices=["process", "thread"],
        help="Python execution mode",
    )
    parser.add_argument("--state-backend", choices=["hashmap", "rocksdb"])
    parser.add_argument(
        "--commit-scope",
        default="checkpoint",
        choices=list(commit_scopes),
        help=commit_scope_help,
    )
    parser.add_argument("--sink-id-prefix", default=sink_id_prefix)
    parser.add_argument(
        "-D",
        "--flink-setting",
        dest="flink_settings",
        action="append",
        type=flink_setting,
        default=[],
        metavar="KEY=VALUE",
        help="a Flink configuration key for this run, repeatable, as `flink run -D` takes it "
        "(e.g. -D python.fn-execution.bundle.time=100); over flink-conf/config.yaml and the "
        "flags above",
    )
    parser.add_argument(
        "--commit-log-retention",
        type=duration,
        metavar="DURATION",
        help="how long the sinks keep their commit-log rows, e.g. '2 min' (default: 7 days; "
        "trimmed every 10 min, or every retention if shorter; see sinks/README.md)",
    )


def job_arguments(args: argparse.Namespace, otherwise: str = "") -> dict[str, Any]:
    """JobConfig's fields from flags parsed with both functions above; SystemExit when a source
    lacks what it needs. `otherwise` ends the message of missing --input, e.g. " (or use
    --demo)"."""
    if args.source == "kafka":
        if not args.bootstrap_servers or not args.topic or not args.db_url:
            raise SystemExit("--source kafka needs --bootstrap-servers, --topic and --db-url")
    elif not args.input or not args.db_url:
        raise SystemExit(f"--input and --db-url are required{otherwise}")
    try:  # the URL's parameters are checked before anything starts (the JVM, the schema step)
        jdbc_to_params(args.db_url, args.db_user)
    except ValueError as error:
        raise SystemExit(f"--db-url: {error}") from None
    return dict(
        input=args.input,
        db_url=args.db_url,
        db_user=args.db_user,
        password_env=args.password_env,
        password_file=args.password_file,
        parallelism=args.parallelism,
        checkpoint_interval=args.checkpoint_interval,
        checkpoint_dir=args.checkpoint_dir,
        watch=args.watch,
        from_checkpoint=args.from_checkpoint,
        savepoint_dir=args.savepoint_dir,
        execution_mode=args.execution_mode,
        state_backend=args.state_backend,
        commit_scope=args.commit_scope,
        sink_id_prefix=args.sink_id_prefix,
        source=args.source,
        bootstrap_servers=args.bootstrap_servers,
        topic=args.topic,
        group_id=args.group_id,
        starting_offsets=args.starting_offsets,
        bounded=args.bounded,
        kafka_properties=kafka_properties(args.kafka_properties_file, args.kafka_properties),
        extra_settings=dict(args.flink_settings),
        progress_interval=args.progress_interval,
        metrics_port=args.metrics_port,
        commit_log_retention=args.commit_log_retention,
    )


# Kept by the job whatever a flag says: they are what makes it exactly once.
FLINK_SETTINGS_OWNED = {
    # The sinks commit on checkpoints; at-least-once checkpoints would replay rows they wrote.
    "execution.checkpointing.mode": "the job's sinks need EXACTLY_ONCE checkpoints",
}
KAFKA_PROPERTIES_OWNED = {
    # Records of an aborted producer transaction must never be read.
    "isolation.level": "the job reads read_committed only",
    "group.id": "use --group-id",
    # The source sets these from its own flags and offsets; Flink's KafkaSource overrides them.
    "bootstrap.servers": "use --bootstrap-servers",
    "auto.offset.reset": "use --starting-offsets",
    "enable.auto.commit": "the job's positions live in its checkpoints and the database",
    "key.deserializer": "the job reads raw bytes",
    "value.deserializer": "the job reads raw bytes",
}


def key_value(text: str) -> tuple[str, str]:
    """ "KEY=VALUE" as (KEY, VALUE): the key without spaces around it, the value as given."""
    key, equals, value = text.partition("=")
    if not equals or not key.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key.strip(), value.strip()


def flink_setting(text: str) -> tuple[str, str]:
    """A `-D KEY=VALUE`, refused for a key the job keeps (FLINK_SETTINGS_OWNED)."""
    key, value = key_value(text)
    if key in FLINK_SETTINGS_OWNED:
        raise argparse.ArgumentTypeError(f"{key} cannot be set: {FLINK_SETTINGS_OWNED[key]}")
    return key, value


def kafka_property(text: str) -> tuple[str, str]:
    """A `--kafka-property KEY=VALUE`, refused for a key the job keeps (KAFKA_PROPERTIES_OWNED)."""
    key, value = key_value(text)
    if key in KAFKA_PROPERTIES_OWNED:
        raise argparse.ArgumentTypeError(f"{key} cannot be set: {KAFKA_PROPERTIES_OWNED[key]}")
    return key, value


def kafka_properties(path: Optional[str], flags: list[tuple[str, str]]) -> dict[str, str]:
    """--kafka-properties-file's properties, then --kafka-property's over them; SystemExit
    naming the file and line of one that is malformed or kept by the job (never its value:
    the file holds secrets)."""
    found: dict[str, str] = {}
    if path:
        try:
            text = open(path, encoding="utf-8").read()
        except (OSError, UnicodeDecodeError) as error:
            raise SystemExit(f"--kafka-properties-file: cannot read {path}: {error}") from None
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith(("#", "!")):
                continue
            try:
                key, value = kafka_property(line)
            except argparse.ArgumentTypeError as error:
                reason = str(error) if "cannot be set" in str(error) else "not KEY=VALUE"
                raise SystemExit(
                    f"--kafka-properties-file: {path}, line {number}: {reason}"
                ) from None
            found[key] = value
    found.update(flags)
    return found


def metrics_port(text: str) -> str:
    """A port or a range of ports "FIRST-LAST" as Flink's Prometheus reporter takes it."""
    parts = text.strip().split("-")
    try:
        ports = [int(part) for part in parts]
    except ValueError:
        ports = []
    if len(ports) not in (1, 2) or not all(1 <= port <= 65535 for port in ports):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a port (1-65535) or a range of ports such as 9260-9269"
        )
    if len(ports) == 2 and ports[0] > ports[1]:
        raise argparse.ArgumentTypeError(f"{text!r}: the range's first port is above its last")
    return "-".join(str(port) for port in ports)


def duration(text: str) -> str:
    """A flag's duration ("2 min", "30 s"), checked when the flags are parsed."""
    try:
        if parse_duration_ms(text) <= 0:
            raise ValueError(f"{text!r} is not a positive duration")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def parse_duration_ms(text: str) -> int:
    """Milliseconds of a duration as Flink writes them: "500 ms", "5 s", "2 min", "1 h"; a bare
    number is milliseconds."""
    units = {"ms": 1, "s": 1000, "sec": 1000, "min": 60_000, "m": 60_000, "h": 3_600_000}
    number = text.strip().rstrip("abcdefghijklmnopqrstuvwxyz ").strip()
    unit = text.strip()[len(number) :].strip() or "ms"
    if unit not in units:
        raise ValueError(f"unknown duration unit in {text!r}: use ms, s, min or h")
    return int(float(number) * units[unit])
