"""A local PyFlink environment that behaves on a shared machine.

PyFlink's defaults write logs into site-packages, leave temp files in /tmp and run Python
workers with whatever `python` is first on PATH; this module fixes those once, in one place.
Call `prepare_process_environment()` before anything starts the JVM (it is idempotent and
`local_environment()` calls it).
"""

import getpass
import os
import shutil
import site
import sys
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Optional

from localenv import jvm_archive, warm_workers
from localenv.child_env import ARCHIVE_OPTIONS, prometheus_reporter_jar

# Re-exported: the jobs, tests and benchmarks import them from here.
from localenv.child_env import PYFLINK_RUNTIME_VARIABLES as PYFLINK_RUNTIME_VARIABLES
from localenv.child_env import child_process_environment as child_process_environment
from localenv.paths import PROJECT_ROOT, sub_dir

FLINK_CONF_DIR = PROJECT_ROOT / "flink-conf"


def flatten_config(tree: Mapping, prefix: str = "") -> dict[str, str]:
    """Flink 2's nested `config.yaml` as the dotted keys of a Flink `Configuration`.

    Values are strings as Flink writes them: booleans `true`/`false` (YAML's `true` is Python's
    True, whose str() Flink would not take for a boolean key), everything else str()."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_config(value, name + "."))
        else:
            flat[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return flat


def file_uri(path: str) -> str:
    """A checkpoint location as Flink wants it: URIs pass through, local paths become file://."""
    return path if "://" in path else "file://" + os.path.abspath(path)


def read_config(conf_dir: Optional[Path] = None) -> dict[str, str]:
    """`<conf_dir>/config.yaml` (default flink-conf/) flattened; {} if there is no such file."""
    import yaml

    path = Path(conf_dir or FLINK_CONF_DIR) / "config.yaml"
    if not path.is_file():
        return {}
    return flatten_config(yaml.safe_load(path.read_text()) or {})


def prepare_process_environment() -> None:
    """Point Flink's logs, temp files and configuration at project-owned directories.

    Only effective before the JVM gateway starts (the first PyFlink call that needs Java).
    """
    require_java()
    os.environ.setdefault("FLINK_CONF_DIR", str(FLINK_CONF_DIR))
    os.environ.setdefault("FLINK_LOG_DIR", str(sub_dir("flink", "log")))
    # PyFlink names the client JVM's log file flink-<ident>-python-<host>.log and truncates it
    # at start: with the same name for every process, a job started by a test (or a second
    # terminal) wiped the log of the one already running. One file per process instead.
    if "FLINK_IDENT_STRING" not in os.environ:
        os.environ["FLINK_IDENT_STRING"] = f"{getpass.getuser()}-{os.getpid()}"
    tmp = sub_dir("flink", "tmp")
    jvm_args = os.environ.get("JVM_ARGS", "").split()
    if not any(arg.startswith("-Djava.io.tmpdir") for arg in jvm_args):
        jvm_args.append(f"-Djava.io.tmpdir={tmp}")
    # Flink's classes from this machine's CDS archive, if `.ci/setup` made one: about a second
    # less start-up per job (see localenv/jvm_archive.py).
    if not any(arg.startswith(ARCHIVE_OPTIONS) for arg in jvm_args):
        jvm_args.extend(jvm_archive.jvm_options())
    os.environ["JVM_ARGS"] = " ".join(jvm_args)
    # The mini cluster finds metric reporters on its class path only, not in plugins/ as a
    # cluster's processes do; with Flink's Prometheus reporter there, `--metrics-port` works
    # locally. PyFlink's launcher puts HADOOP_CLASSPATH on its JVM's class path. Always, since
    # the JVM starts before a job reads its flags: the reporter stays off unless configured.
    reporter = prometheus_reporter_jar()
    class_path = os.environ.get("HADOOP_CLASSPATH", "")
    if reporter is not None and str(reporter) not in class_path.split(os.pathsep):
        entries = [entry for entry in (class_path, str(reporter)) if entry]
        os.environ["HADOOP_CLASSPATH"] = os.pathsep.join(entries)


def start_jvm_early() -> None:
    """Launch PyFlink's JVM in the background, so that it boots while the caller goes on
    importing (Beam alone takes about half a second). A job's entry point calls this before its
    other imports; the job's first use of the gateway then waits for this launch instead of
    starting its own. No effect under `flink run`, whose JVM is already up."""
    if running_under_flink_cli():
        return
    try:
        prepare_process_environment()
    except JavaNotFoundError:
        return  # said again, with what to do, when the job needs Java
    threading.Thread(target=_launch_gateway, name="early-jvm", daemon=True).start()


def _launch_gateway() -> None:
    from pyflink.java_gateway import get_gateway

    try:
        get_gateway()
    except Exception:  # the job's own first call launches it again and reports why it fails
        pass


class JavaNotFoundError(RuntimeError):
    pass


def require_java() -> None:
    """PyFlink needs a Java 11+ runtime; say how to get one instead of failing obscurely."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and Path(java_home, "bin", "java").is_file():
        return
    if shutil.which("java"):
        return
    raise JavaNotFoundError(
        "Java not found: PyFlink runs on a Java 11+ runtime. Install one (Debian: `apt-get "
        "install openjdk-17-jdk-headless`, which also brings javac to build the sink) or set "
        "JAVA_HOME."
    )


def use_python_worker_processes() -> None:
    """Run a local job's Python functions in worker processes, one per subtask, as a
    TaskManager of a cluster does.

    PyFlink's default on the mini cluster ("loopback") runs the Python functions of every
    subtask in threads of the client process: one interpreter and one GIL for the whole job,
    so parallelism 2 gets one core's worth of Python. Call before `execute`; an explicit
    `_python_worker_execution_mode=loopback` in the environment (the variable PyFlink reads)
    still wins. No effect in thread mode, where Python is embedded in the JVM.
    """
    os.environ.setdefault("_python_worker_execution_mode", "process")


def skip_final_garbage_collection() -> None:
    """Call when a job's process is about to exit. The interpreter's last garbage collection
    walks every object PyFlink, py4j and Beam made, about 0.4 s on our machines (py-spy:
    `gc_collect_main` after the job had returned), and nothing of a finished job needs it."""
    import gc

    gc.freeze()


def python_worker_settings() -> dict[str, str]:
    """Settings that make Python workers run this interpreter with this environment's packages."""
    site_packages = [p for p in site.getsitepackages() if Path(p).is_dir()]
    return {
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
        # Thread mode embeds the interpreter through pemja; it needs the venv's packages.
        "python.pythonpath": os.pathsep.join([str(PROJECT_ROOT), *site_packages]),
    }


def local_settings(parallelism: int = 2) -> dict[str, str]:
    tmp = sub_dir("flink", "tmp")
    return {
        **python_worker_settings(),
        "parallelism.default": str(parallelism),
        "io.tmp.dirs": str(tmp),
        "rest.port": "0",
        # What the REST API says of a job (what `jobs.progress` shows: lines read, restarts and
        # their causes, checkpoints) as of at most a second ago, not Flink's default 10 s for
        # metrics and 3 s for the rest. Fetched only when asked for.
        "metrics.fetcher.update-interval": "1 s",
        "web.refresh-interval": "1 s",
    }


def local_environment(
    parallelism: int = 2, settings: Optional[dict[str, str]] = None, jars: Iterable[str] = ()
):
    """A StreamExecutionEnvironment for Flink's local mini cluster.

    `settings` are Flink configuration keys (e.g. `execution.checkpointing.interval`) applied on
    top of the local defaults; `jars` are local paths added with `add_jars`.
    """
    prepare_process_environment()
    merged = {**local_settings(parallelism), **(settings or {})}
    if _python_workers_are_processes(merged) and merged["python.executable"] == sys.executable:
        # Workers forked from a process that already imported what they need (see
        # localenv/warm_workers.py): started now, its imports overlap the JVM's start.
        merged["python.executable"] = warm_workers.launcher(sys.executable)
    return _environment(merged, parallelism, jars)


def _python_workers_are_processes(settings: dict[str, str]) -> bool:
    return (
        warm_workers.enabled()
        and settings.get("python.execution-mode", "process") == "process"
        and os.environ.get("_python_worker_execution_mode") == "process"
    )


def _environment(settings: dict[str, str], parallelism: int, jars: Iterable[str]):
    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment

    config = Configuration()
    for key, value in settings.items():
        config.set_string(key, str(value))
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_parallelism(parallelism)
    jar_urls = [Path(j).resolve().as_uri() for j in jars]
    if jar_urls:
        env.add_jars(*jar_urls)
    return env


def running_under_flink_cli() -> bool:
    """True when this interpreter was started by `flink run -py/-pym` (PyFlink's PythonDriver).

    The CLI owns the JVM and passes its gateway port in PYFLINK_GATEWAY_PORT, the variable PyFlink
    itself uses to decide to connect to an existing gateway instead of launching one.
    """
    return "PYFLINK_GATEWAY_PORT" in os.environ


def job_environment(
    parallelism: int = 2, settings: Optional[dict[str, str]] = None, jars: Iterable[str] = ()
):
    """The environment a job module should use: right locally and under `flink run`.

    Run directly (`python -m jobs.x`), this is `local_environment()`: a mini cluster with the
    local defaults. Under `flink run`, the execution environment is the CLI's context environment
    for the cluster; the local defaults would be harmful there (`rest.port: 0` overrides the
    cluster's REST port and the client submits to http://127.0.0.1:0), so only the job's own
    `settings` and parallelism are applied. Where the job runs (REST address, temp dirs, Python
    interpreter of the workers, shipped files) is then the submitter's business:
    `flink run -pyexec/-pyclientexec/-pyfs/-D...`, see `localenv.cluster submit`.
    """
    if not running_under_flink_cli():
        return local_environment(parallelism, settings, jars)
    return _environment(dict(settings or {}), parallelism, jars)
