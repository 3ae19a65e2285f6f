"""A class-data-sharing (AppCDS) archive for the local Flink JVM: `python -m localenv.jvm_archive`.

Every local job starts a fresh JVM that loads, parses and verifies some ten thousand classes
of Flink, Beam's Java harness, gRPC and Netty before the first record moves. That is about a
second of wall time and three seconds of CPU per start on our 2-core machines (measured: the
same 1,000-line job, 7.5 s and 12 s of CPU without the archive, 6.7 s and 9.6 s with it). A
CDS archive holds those classes already parsed and verified, and the JVM maps it in.

The archive is made once per machine by a training run (the payments job on 1,000 generated
lines, discarding sinks, so no database is needed), with `-XX:ArchiveClassesAtExit`. It is only
valid for the exact JVM and class path it was made with, so its file name is a digest of both
(`archive_key`); a JDK or pyflink upgrade simply finds no archive and runs without one, until
`.ci/setup` (or this module) makes a new one. Jobs never train by themselves: a run's speed does
not depend on whether it happened to be the first.

`TPC_JVM_ARCHIVE=off` runs without the archive (e.g. to measure what it buys).
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Optional

from localenv.child_env import child_process_environment, without_archive
from localenv.paths import PROJECT_ROOT, sub_dir
from localenv.processes import tagged

OPT_OUT_VARIABLE = "TPC_JVM_ARCHIVE"
TRAINING_LINES = 1000
# The JVM writes the archive when it exits; a 100 MB archive takes a few seconds on our
# machines. Waiting longer than this means something is wrong: give up, keep no archive.
WRITE_TIMEOUT_S = 120
TRAINING_TIMEOUT_S = 300
TRAINING_TAG = "TPC_JVM_ARCHIVE_TRAINING"


def _java_executable() -> Optional[Path]:
    # The same choice as pyflink's gateway launcher: $JAVA_HOME/bin/java, else `java` on PATH.
    java_home = os.environ.get("JAVA_HOME")
    if java_home and Path(java_home, "bin", "java").is_file():
        return Path(java_home, "bin", "java").resolve()
    found = shutil.which("java")
    return Path(found).resolve() if found else None


def _class_path_files() -> list[Path]:
    """What the local gateway JVM's class path is built from (pyflink's lib and opt jars)."""
    import pyflink

    home = Path(pyflink.__file__).resolve().parent
    return sorted([*home.glob("lib/*.jar"), *home.glob("opt/flink-python*.jar")])


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
    digest.update(os.environ.get("HADOOP_CLASSPATH", "").encode())
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


def _training_run(work: Path, archive: Path) -> None:
    """Runs the payments job on generated lines in a child process whose JVM writes `archive`
    at exit; returns once that JVM has exited."""
    from transforms import sample_data

    input_dir = work / "input"
    input_dir.mkdir()
    (input_dir / "part-000.jsonl").write_bytes(
        b"".join(sample_data.generate_lines(TRAINING_LINES, seed=1, id_prefix="cds"))
    )
    env = child_process_environment(
        {
            OPT_OUT_VARIABLE: "off",  # train from scratch, never on top of a stale archive
            "JVM_ARGS": f"{without_archive(os.environ.get('JVM_ARGS', ''))} "
            f"-XX:ArchiveClassesAtExit={archive}",
        }
    )
    # The JVM writes the archive at exit, after the job's process has returned: wait for every
    # process of the training run (they inherit the tag) to be gone.
    tag = uuid.uuid4().hex
    env[TRAINING_TAG] = tag
    command = [
        sys.executable,
        "-m",
        "bench.payments_job",
        "--input",
        str(input_dir),
        "--db-url",
        "jdbc:postgresql://unused",
        "--sinks",
        "discard",
        "--checkpoint-dir",
        str(work / "checkpoints"),
    ]
    result = subprocess.run(
        command,
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TRAINING_TIMEOUT_S,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the training run failed:\n{result.stderr[-3000:]}")
    deadline = time.monotonic() + WRITE_TIMEOUT_S
    while tagged(TRAINING_TAG, tag):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the training JVM did not exit within {WRITE_TIMEOUT_S} s")
        time.sleep(0.2)


def build(force: bool = False) -> Optional[Path]:
    """Make this machine's archive if there is none; returns its path (None without Java)."""
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
        _training_run(Path(tmp), staged)
        if not staged.is_file():
            raise RuntimeError("the training JVM exited without writing the archive")
        os.replace(staged, path)  # atomic: a starting JVM sees the whole archive or none
    for stale in path.parent.glob("flink-*.jsa"):  # archives of an earlier JDK or pyflink
        if stale != path:
            stale.unlink(missing_ok=True)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="make it again even if present")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        path = build(force=args.force)
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        # Only start-up time depends on the archive: say so, and let setup go on.
        print(f"jvm archive: not made ({error}); jobs start without it", file=sys.stderr)
        return 1
    if path is None:
        print("jvm archive: no Java found; nothing to do", file=sys.stderr)
        return 1
    print(
        f"jvm archive: {path} ({path.stat().st_size // 2**20} MB, "
        f"{time.monotonic() - started:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
