"""The Flink settings and environment of a run: flink-conf/config.yaml's job defaults, then the
run's flags, then what no exactly-once job may go without."""

from jobs.flink_config import job_defaults
from jobs.kit.config import JobConfig
from jobs.kit.line_sources import BUNDLE_LINES
from localenv.flink import file_uri

__all__ = ["create_environment", "flink_settings"]


# Flink's own reporter, in PyFlink's plugins/ directory (the mini cluster loads it from there too).
PROMETHEUS_REPORTER = "org.apache.flink.metrics.prometheus.PrometheusReporterFactory"


def flink_settings(config: JobConfig) -> dict[str, str]:
    """flink-conf/config.yaml's job defaults, then this run's flags."""
    from localenv.paths import sub_dir

    settings = job_defaults()
    settings.setdefault(
        "execution.checkpointing.dir", (sub_dir("checkpoints", config.sink_id_prefix)).as_uri()
    )
    overrides = {
        "execution.checkpointing.interval": config.checkpoint_interval,
        "execution.checkpointing.dir": config.checkpoint_dir and file_uri(config.checkpoint_dir),
        "execution.state-recovery.path": config.from_checkpoint
        and file_uri(config.from_checkpoint),
        "state.backend.type": config.state_backend,
        "python.execution-mode": config.execution_mode,
        "python.fn-execution.bundle.size": str(
            config.bundle_size or max(1, BUNDLE_LINES // (config.batch_lines or 1))
        ),
    }
    settings.update({k: v for k, v in overrides.items() if v})
    if config.metrics_port:
        settings["metrics.reporter.prom.factory.class"] = PROMETHEUS_REPORTER
        settings["metrics.reporter.prom.port"] = config.metrics_port
    settings.update(config.extra_settings)
    # Non-negotiable for these jobs: they exist to be exactly once.
    settings["execution.checkpointing.mode"] = "EXACTLY_ONCE"
    # Hand records between chained operators without a deep copy (profiles showed the copies at
    # a tenth of the JVM's time): a job's operators copy what they keep, as transforms/' do.
    # Not in thread mode, whose Python operators emit one reused Row object.
    if config.execution_mode != "thread":
        settings.setdefault("pipeline.object-reuse", "true")
    return settings


def create_environment(config: JobConfig):
    """A StreamExecutionEnvironment with `flink_settings(config)`, the sink's jars and, for a
    Kafka source, Kafka's."""
    from localenv.flink import job_environment, use_python_worker_processes
    from sinks import add_kafka_jars, add_sink_jars

    use_python_worker_processes()
    env = job_environment(config.parallelism, flink_settings(config))
    add_sink_jars(env)
    if config.source == "kafka":
        add_kafka_jars(env)
    return env
