"""Build the sink's Java core into a jar: `python -m sinks.build [--force]`.

No Maven repository is needed: the sources compile with plain `javac --release 11` against the
jars that the installed pyflink package ships. The jar lands in `var/jars/` (never committed)
and is rebuilt when the sources change. `sink_jar()` builds on first use, so a fresh clone works
without this step; running it during setup only moves the wait (and a missing JDK) up front.
"""
import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from localenv.paths import sub_dir

SOURCES = Path(__file__).resolve().parent / "java" / "src"
JAR_NAME = "tpc-connectors.jar"  # the sink, and a numbered-lines file format
DEFAULT_DRIVER_JAR = "/usr/share/java/postgresql.jar"


class SinkBuildError(RuntimeError):
    pass


def pyflink_home() -> Path:
    import pyflink
    return Path(pyflink.__file__).resolve().parent


def java_sources():
    return sorted(SOURCES.rglob("*.java"))


def sources_digest() -> str:
    digest = hashlib.sha256()
    for source in java_sources():
        digest.update(source.relative_to(SOURCES).as_posix().encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()


def driver_jar() -> Path:
    """The PostgreSQL JDBC driver jar: `$TPC_JDBC_DRIVER_JAR`, else Debian's."""
    path = Path(os.environ.get("TPC_JDBC_DRIVER_JAR", DEFAULT_DRIVER_JAR))
    if not path.is_file():
        raise SinkBuildError(
            f"PostgreSQL JDBC driver jar not found at {path}. Install it (Debian: "
            "`apt-get install libpostgresql-jdbc-java`) or set TPC_JDBC_DRIVER_JAR to its path.")
    return path


def sink_jar(force: bool = False) -> Path:
    """Path of the built sink jar, building it if missing or older than the sources."""
    out_dir = sub_dir("jars")
    jar = out_dir / JAR_NAME
    stamp = out_dir / (JAR_NAME + ".sha256")
    digest = sources_digest()
    if not force and jar.is_file() and stamp.is_file() and stamp.read_text().strip() == digest:
        return jar
    javac, jar_tool = shutil.which("javac"), shutil.which("jar")
    if not javac or not jar_tool:
        raise SinkBuildError(
            "building the sink needs a JDK (javac and jar), not just a Java runtime. Install one "
            "(Debian: `apt-get install openjdk-17-jdk-headless`) and run `python -m sinks.build`.")
    flink_jars = sorted((pyflink_home() / "lib").glob("*.jar"))
    classpath = os.pathsep.join(str(p) for p in [*flink_jars, driver_jar()])
    with tempfile.TemporaryDirectory(prefix="tpc-sink-build-", dir=out_dir) as tmp:
        classes = Path(tmp) / "classes"
        compile_cmd = [javac, "--release", "11", "-nowarn", "-encoding", "UTF-8",
                       "-cp", classpath, "-d", str(classes), *map(str, java_sources())]
        result = subprocess.run(compile_cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise SinkBuildError(f"javac failed:\n{result.stdout}{result.stderr}")
        staged_jar = Path(tmp) / JAR_NAME
        result = subprocess.run([jar_tool, "cf", str(staged_jar), "-C", str(classes), "."],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise SinkBuildError(f"jar failed:\n{result.stdout}{result.stderr}")
        os.replace(staged_jar, jar)  # atomic: concurrent users never see half a jar
    stamp.write_text(digest + "\n")
    return jar


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args(argv)
    try:
        jar = sink_jar(force=args.force)
        print(f"sink jar:   {jar}")
        print(f"JDBC driver: {driver_jar()}")
    except SinkBuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
