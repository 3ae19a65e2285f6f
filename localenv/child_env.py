"""The environment to start a child Python or Flink process with, from a process that may
have run a PyFlink job in-process (`child_process_environment`).

Its own module so that `localenv.flink` (which uses the JVM archive) and `localenv.jvm_archive`
(whose training run starts a child process) both use it without importing each other.
"""

import os
from pathlib import Path
from typing import Optional

# What `localenv.jvm_archive.jvm_options` adds, and what a training run must not inherit.
ARCHIVE_OPTIONS = ("-XX:SharedArchiveFile", "-XX:ArchiveClassesAtExit", "-Xshare", "-Xlog:cds")


def without_archive(jvm_args: str) -> str:
    """`jvm_args` without the options that use or write a JVM archive."""
    return " ".join(arg for arg in jvm_args.split() if not arg.startswith(ARCHIVE_OPTIONS))


# Set in os.environ by PyFlink once a job has run in this process (its Python workers run in
# "loopback" mode inside the client). A child process that inherits them tries to reuse this
# process's gateway and worker server, and fails; `child_process_environment()` drops them.
PYFLINK_RUNTIME_VARIABLES = (
    "PYFLINK_GATEWAY_DISABLED",
    "PYFLINK_GATEWAY_PORT",
    "PYTHON_LOOPBACK_SERVER_ADDRESS",
    "_PYFLINK_CONN_INFO_PATH",
    "BOOT_LOG_DIR",
    "SEMI_PERSISTENT_DIRECTORY",
    "python",
    "_PYTHON_WORKER_MEMORY_LIMIT",
    "TABLE_LOCAL_TIME_ZONE",
    # Per process (see localenv.flink.prepare_process_environment): a child names its own log
    # file.
    "FLINK_IDENT_STRING",
)
_PYTHONPATH_AT_IMPORT = os.environ.get("PYTHONPATH")

# The local gateway JVM's class path has Flink's Prometheus reporter from PyFlink's plugins/
# directory (see localenv.flink.prepare_process_environment), through HADOOP_CLASSPATH, which
# PyFlink's launcher and Flink's scripts put on a JVM's class path. A cluster's processes load
# it as a plugin: on their class path too, it would be found twice.
REPORTER_PLUGIN_DIR = "metrics-prometheus"


def prometheus_reporter_jar() -> Optional[Path]:
    """Flink's Prometheus reporter, as PyFlink ships it in its plugins/ directory."""
    import pyflink

    home = Path(pyflink.__file__).resolve().parent
    return next(iter(sorted(home.glob(f"plugins/{REPORTER_PLUGIN_DIR}/*.jar"))), None)


def without_reporter(class_path: str) -> str:
    """`class_path` (os.pathsep-separated) without the reporter jar that
    `prepare_process_environment` adds."""
    return os.pathsep.join(
        entry
        for entry in class_path.split(os.pathsep)
        if entry and os.path.basename(os.path.dirname(entry)) != REPORTER_PLUGIN_DIR
    )


def child_process_environment(extra: Optional[dict[str, str]] = None) -> dict[str, str]:
    """os.environ for starting another Python/Flink process from this one, without what an
    in-process PyFlink job left behind."""
    env = {k: v for k, v in os.environ.items() if k not in PYFLINK_RUNTIME_VARIABLES}
    # The CDS archive matches the local gateway JVM's class path only; a Flink script's JVM
    # (a TaskManager, `flink run`) has another. A Python child adds it back for its own JVM.
    jvm_args = without_archive(env.get("JVM_ARGS", ""))
    if jvm_args:
        env["JVM_ARGS"] = jvm_args
    else:
        env.pop("JVM_ARGS", None)
    hadoop_class_path = without_reporter(env.get("HADOOP_CLASSPATH", ""))
    if hadoop_class_path:
        env["HADOOP_CLASSPATH"] = hadoop_class_path
    else:
        env.pop("HADOOP_CLASSPATH", None)
    env.pop("PYTHONPATH", None)
    if _PYTHONPATH_AT_IMPORT is not None:
        env["PYTHONPATH"] = _PYTHONPATH_AT_IMPORT
    env.update(extra or {})
    return env
