"""A class-data-sharing (AppCDS) archive for the local Flink JVM (`python -m bench.jvm_archive`
makes it).

Every local job starts a fresh JVM that loads, parses and verifies some ten thousand classes
of Flink, Beam's Java harness, gRPC and Netty before the first record moves. That is about a
second of wall time and three seconds of CPU per start on our 2-core machines (measured: the
same 1,000-line job, 7.5 s and 12 s of CPU without the archive, 6.7 s and 9.6 s with it). A
CDS archive holds those classes already parsed and verified, and the JVM maps it in.

The archive is made once per machine by a training run with `-XX:ArchiveClassesAtExit`
(`build`). The job it runs is the caller's: `bench.jvm_archive` runs the payments job on 1,000
generated lines, with discarding sinks, so no database is needed. It is only valid for the exact
JVM and class path it was made with, so its file name is a digest of both (`archive_key`); a JDK
or pyflink upgrade simply finds no archive and runs without one, until `.ci/setup` (or
`python -m bench.jvm_archive`) makes a new one. Jobs never train by themselves: a run's speed
does not depend on whether it happened to be the first.

`TPC_JVM_ARCHIVE=off` runs without the archive (e.g. to measure what it buys).
"""

import hashlib
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable, Optional

from localenv.child_env import (
    child_process_environment,
    prometheus_reporter_jar,
    without_archive,
    without_reporter,
)
from localenv.paths import sub_dir
from localenv.processes import tagged

OPT_OUT_VARIABLE = "TPC_JVM_ARCHIVE"
# The JVM writes the archive when it exits; a 100 MB archive takes a few seconds on our
# machines. Waiting longer than this means something is wrong: give up, keep no archive.
WRITE_TIMEOUT_S = 120
TRAINING_TAG = "TPC_JVM_ARCHIVE_TRAINING"
# (work directory, environment of the child process) -> None; see `build`.
TrainingRun = Callable[[Path, dict[str, str]], None]


def _java_executable() -> Optional[Path]:
    # The same choice as pyflink's gateway launcher: $JAVA_HOME/bin/java, else `java` on PATH.
    java_home = os.environ.get("JAVA_HOME")
    if java_home and Path(java_home, "bin", "java").is_file():
        return Path(java_home, "bin", "java").resolve()
    found = shutil.which("java")
    return Path(found).resolve() if found else None


def _class_path_files() -> list[Path]:
    """What the local gateway JVM's class path is built from (pyflink's lib and opt jars, and
    the Prometheus reporter that `localenv.flink.prepare_process_environment` adds)."""
    import pyflink

    home = Path(pyflink.__file__).resolve().parent
    reporter = prometheus_reporter_jar()
    return sorted(
        [
            *home.glob("lib/*.jar"),
            *home.glob("opt/flink-python*.jar"),
            *([reporter] if reporter else []),
        ]
    )


def archive_key() -> Optional[str]:
    """A digest of everything the archive must match: the JVM build and the class path."""
    java = _java_executable()
    if java is None:
        return None
    digest = hashlib.sha256()
    jvm_files = [java, *sorted(java.parent.parent.glob("lib/server/*"))]
    for path in [*jvm_files, *_class_path_files()]:
        stat = path.stat()
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    digest.update(without_reporter(os.environ.get("HADOOP_CLASSPATH", "")).encode())
    return digest.hexdigest()[:16]


def archive_path(key: Optional[str] = None) -> Optional[Path]:
    key = key or archive_key()
    return sub_dir("flink", "cds") / f"flink-{key}.jsa" if key else None


def jvm_options() -> list[str]:
    """The JVM options that use this machine's archive, or none when there is none (or the
    user opted out). `-Xshare:auto` (the default) means a JVM that cannot map the archive
    runs without it rather than failing; it would say so on stdout, in the middle of a job's
    output, but start-up time is all that is lost, hence `-Xlog:cds=off`."""
    if os.environ.get(OPT_OUT_VARIABLE, "").lower() in ("off", "0", "false", "no"):
        return []
    path = archive_path()
    if path is None or not path.is_file():
        return []
    return [f"-XX:SharedArchiveFile={path}", "-Xshare:auto", "-Xlog:cds=off,cds+dynamic=off"]


def training_environment(archive: Path, tag: str) -> dict[str, str]:
    """The environment of a training run's child process: its JVM writes `archive` at exit,
    and every process of the run carries `tag` (so that `build` can wait for them all)."""
    env = child_process_environment(
        {
            OPT_OUT_VARIABLE: "off",  # train from scratch, never on top of a stale archive
            "JVM_ARGS": f"{without_archive(os.environ.get('JVM_ARGS', ''))} "
            f"-XX:ArchiveClassesAtExit={archive}",
        }
    )
    env[TRAINING_TAG] = tag
    return env


def build(training_run: TrainingRun, force: bool = False) -> Optional[Path]:
    """Make this machine's archive if there is none; returns its path (None without Java).

    `training_run(work_dir, env)` runs a job in a child process started with `env`
    (`training_environment`), using `work_dir` for its files, and returns when that process
    has; it raises if the job failed. The caller chooses the job: this module sits below the
    jobs (see tests/test_package_floors.py)."""
    key = archive_key()
    if key is None:
        return None
    path = archive_path(key)
    if path is None:
        return None
    if path.is_file() and not force:
        return path
    with tempfile.TemporaryDirectory(prefix="cds-", dir=path.parent) as tmp:
        staged = Path(tmp) / path.name
        tag = uuid.uuid4().hex
        training_run(Path(tmp), training_environment(staged, tag))
        # The JVM writes the archive at exit, after the job's process has returned: wait for
        # every process of the training run (they inherit the tag) to be gone.
        deadline = time.monotonic() + WRITE_TIMEOUT_S
        while tagged(TRAINING_TAG, tag):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the training JVM did not exit within {WRITE_TIMEOUT_S} s")
            time.sleep(0.2)
        if not staged.is_file():
            raise RuntimeError("the training JVM exited without writing the archive")
        os.replace(staged, path)  # atomic: a starting JVM sees the whole archive or none
    for stale in path.parent.glob("flink-*.jsa"):  # archives of an earlier JDK or pyflink
        if stale != path:
            stale.unlink(missing_ok=True)
    return path
