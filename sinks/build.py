"""Build the Java core into one jar: `python -m sinks.build [--force] [--test]`.

`sinks/java` is a Maven module. `mvn package` compiles it against Flink (provided: the cluster
and pyflink have those classes, at exactly the installed pyflink's version) and shades in the
PostgreSQL JDBC driver, so jobs ship one jar. The jar lands in `var/jars/` (never committed) and
is rebuilt when `pom.xml` or a source under `src/main` changes. The first build downloads the
dependencies from Maven Central into `~/.m2`; later builds run offline. `sink_jar()` builds on
first use, so a fresh clone works without this step; running it during setup only moves the wait
(and a missing JDK, Maven or network) up front.

`--kafka` also resolves Flink's Kafka connector and the Kafka client (`sinks/kafka/pom.xml`) into
`var/jars/kafka/`: jobs that read Kafka ship those jars beside the sink's (`add_kafka_jars`).

`--test` runs the JUnit tests (`mvn test`, into `var/java-test/`) against a throwaway PostgreSQL
for those that need a database. A plain `mvn test` in `sinks/java` runs them too, but skips the
database-backed ones unless `TPC_TEST_JDBC_URL`, `TPC_TEST_DB_USER` and `TPC_TEST_DB_PASSWORD`
name a server. Before the tests, `--test` checks that the Java sources (main and test) are
formatted (palantir-java-format through Spotless, `spotless:check`) and stops if one is not:
`--format` reformats them (`spotless:apply`). `--fetch-formatter` downloads the formatter into
`~/.m2` (`.ci/setup` does, so the check runs offline).
"""

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from localenv.maven import explain_failure, locked, offline_first, tail
from localenv.paths import sub_dir

JAVA_MODULE = Path(__file__).resolve().parent / "java"
POM = JAVA_MODULE / "pom.xml"
MAIN_SOURCES = JAVA_MODULE / "src" / "main"
KAFKA_POM = Path(__file__).resolve().parent / "kafka" / "pom.xml"
JAR_NAME = "tpc-connectors.jar"  # the sink, a numbered-lines file format, stream operators, pgjdbc
FORMAT_COMMAND = "python -m sinks.build --format"
# By full coordinates, not the `spotless:` prefix (see localenv.maven); the pom sets the version.
SPOTLESS_PLUGIN = "com.diffplug.spotless:spotless-maven-plugin"


class SinkBuildError(RuntimeError):
    pass


def build_inputs():
    return [POM, *sorted(p for p in MAIN_SOURCES.rglob("*") if p.is_file())]


def sources_digest() -> str:
    digest = hashlib.sha256()
    for path in build_inputs():
        digest.update(path.relative_to(JAVA_MODULE).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def pom_flink_version() -> str:
    found = re.search(r"<flink\.version>([^<]+)</flink\.version>", POM.read_text())
    if not found:
        raise SinkBuildError(f"{POM} defines no flink.version property")
    return found.group(1).strip()


def check_flink_version() -> None:
    """Classes compiled against another Flink than the one that runs them fail at run time,
    far from the cause; say so at build time instead."""
    try:
        from pyflink.version import __version__ as installed
    except ImportError:
        return  # building without pyflink (a bare checkout): nothing to compare with
    wanted = pom_flink_version()
    if installed != wanted:
        raise SinkBuildError(
            f"{POM} builds against Flink {wanted}, but the installed pyflink is {installed}: "
            f"set flink.version in the pom to {installed} (the jar must match the Flink that "
            "runs it)"
        )


def maven_command(
    build_dir: Path, offline: bool, goals=("package",), tests: bool = False, pom: Path = POM
):
    mvn = shutil.which("mvn")
    if not mvn:
        raise SinkBuildError(
            "building the sink needs Maven (`mvn`). Install it (Debian: `apt-get install maven`) "
            "or run `bash .ci/setup`, then `python -m sinks.build`."
        )
    return [
        mvn,
        "-B",
        *(["-o"] if offline else []),
        "-f",
        str(pom),
        f"-Dtpc.build.directory={build_dir}",
        # The jar is built quietly and without tests; a test run shows Surefire's counts.
        *(["--no-transfer-progress"] if tests else ["-q", "-Dmaven.test.skip=true"]),
        *goals,
    ]


# A cold build downloads some 250 MB; Maven's own transfers time out much sooner (10 s to
# connect), so this only bounds a Maven that hangs.
MAVEN_TIMEOUT_S = 900


def _maven(command, cwd: Path = JAVA_MODULE) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            command, capture_output=True, text=True, cwd=cwd, timeout=MAVEN_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as expired:
        raise SinkBuildError(
            f"Maven did not finish in {MAVEN_TIMEOUT_S} s: {' '.join(map(str, command))}"
        ) from expired


def _maven_offline_first(
    build_dir: Path, goals, pom: Path = POM, what: str = "the sink's build"
) -> subprocess.CompletedProcess:
    """Maven's result for `goals`, offline from the local repository first, online once when
    that fails (`localenv.maven.offline_first`). A failure to get a plugin or a dependency
    raises `SinkBuildError` saying so (an unreachable Maven Central, a missing artifact); any
    other result is returned for the caller to judge."""
    result, _ = offline_first(
        lambda offline: _maven(
            maven_command(build_dir, offline=offline, goals=goals, pom=pom), cwd=pom.parent
        ),
        "sinks.build: downloading the Java dependencies into Maven's local repository (once)",
    )
    explained = explain_failure(result, what)
    if explained:
        raise SinkBuildError(explained)
    return result


def run_maven(build_dir: Path) -> None:
    """`mvn package` offline from `~/.m2`; online only when something was never downloaded."""
    if not shutil.which("javac"):
        raise SinkBuildError(
            "building the sink needs a JDK (javac), not just a Java runtime. Install one "
            "(Debian: `apt-get install openjdk-17-jdk-headless`) and run `python -m sinks.build`."
        )
    result = _maven_offline_first(
        build_dir, ("package",), what="the sink's dependencies (Flink, the JDBC driver, plugins)"
    )
    if result.returncode != 0:
        raise SinkBuildError(f"Maven build of {JAVA_MODULE} failed:\n{tail(result, 40)}")


def sink_jar(force: bool = False) -> Path:
    """Path of the built jar, building it if missing or older than pom.xml and the sources."""
    out_dir = sub_dir("jars")
    jar = out_dir / JAR_NAME
    stamp = out_dir / (JAR_NAME + ".sha256")
    digest = sources_digest()

    def up_to_date():
        return jar.is_file() and stamp.is_file() and stamp.read_text().strip() == digest

    if not force and up_to_date():
        return jar
    # One build at a time per var dir; whoever waited finds the jar built.
    with locked(out_dir / (JAR_NAME + ".lock")):
        if not force and up_to_date():
            return jar
        check_flink_version()
        # Maven's target/ lives in a fresh directory of this var dir: builds for other var
        # dirs never share it, and nothing stale from a removed source survives.
        with tempfile.TemporaryDirectory(prefix="tpc-build-", dir=out_dir) as tmp:
            build_dir = Path(tmp) / "target"
            run_maven(build_dir)
            os.replace(build_dir / JAR_NAME, jar)  # atomic: concurrent users never see half a jar
        stamp.write_text(digest + "\n")
    return jar


def kafka_connector_jars() -> list[Path]:
    """Flink's Kafka connector and the Kafka client, in var/jars/kafka/ (resolved by Maven from
    sinks/kafka/pom.xml on first use): what a job reading Kafka ships beside `sink_jar()`."""
    from localenv.maven import MavenError, copy_dependencies

    try:
        return copy_dependencies(KAFKA_POM, sub_dir("jars") / "kafka", "Flink's Kafka connector")
    except MavenError as error:
        raise SinkBuildError(str(error)) from error


def _spotless(goal: str, module: Path, build_dir: Optional[Path], *options: str):
    # Spotless keeps an index of the files it found formatted in the build directory, so a
    # second check only reads what changed.
    build_dir = build_dir or sub_dir("java-format")
    return _maven_offline_first(
        build_dir,
        (*options, f"{SPOTLESS_PLUGIN}:{goal}"),
        pom=module / "pom.xml",
        what="the Java formatter (Spotless, palantir-java-format)",
    )


def check_java_format(module: Path = JAVA_MODULE, build_dir: Optional[Path] = None) -> None:
    """Raise `SinkBuildError`, naming the files with their diff and the command that fixes them,
    unless every Java source of `module` (main and test) is as `format_java()` would leave it."""
    result = _spotless("check", module, build_dir)
    if result.returncode == 0:
        return
    lines = [re.sub(r"^\[ERROR\] ?", "", line) for line in tail(result, 400).splitlines()]
    start = next((i for i, line in enumerate(lines) if "format violations" in line), None)
    if start is None:  # not a verdict on the formatting: a file it cannot parse, say
        raise SinkBuildError(f"Spotless could not check the Java sources:\n{tail(result, 40)}")
    end = next((i for i, line in enumerate(lines) if "spotless:apply" in line), len(lines))
    report = [lines[start][lines[start].index("The following") :], *lines[start + 1 : end]]
    raise SinkBuildError(
        "\n".join(report[:60])
        + f"\nThe Java sources of {module} are not formatted (palantir-java-format, AOSP style, "
        f"checked by Spotless). Run `{FORMAT_COMMAND}` to reformat them, then review and commit."
    )


def format_java(module: Path = JAVA_MODULE, build_dir: Optional[Path] = None) -> None:
    """Reformat every Java source of `module` in place (`mvn spotless:apply`)."""
    result = _spotless("apply", module, build_dir)
    if result.returncode != 0:
        raise SinkBuildError(f"formatting the Java sources of {module} failed:\n{tail(result)}")


def fetch_formatter(module: Path = JAVA_MODULE) -> None:
    """Download Spotless and the formatter into `~/.m2` without checking a file (a pattern that
    matches none): `.ci/setup` does, so that the check later runs offline."""
    result = _spotless("check", module, None, "-DspotlessFiles=^$")
    if result.returncode != 0:
        raise SinkBuildError(f"Maven could not resolve the Java formatter:\n{tail(result)}")


def run_java_tests() -> int:
    """`mvn test` with a throwaway PostgreSQL for the database-backed tests; Maven's exit code."""
    from localenv.postgres import LocalPostgres

    command = maven_command(sub_dir("java-test"), offline=False, goals=("test",), tests=True)
    with LocalPostgres() as server:
        db = server.create_database("java_tests")
        # The password reaches Maven's JVM through the environment only, never its command line.
        env = {
            **os.environ,
            "TPC_TEST_JDBC_URL": db.jdbc_url,
            "TPC_TEST_DB_USER": db.user,
            "TPC_TEST_DB_PASSWORD": db.password,
        }
        print("$ " + " ".join(command), flush=True)
        return subprocess.run(command, env=env, cwd=JAVA_MODULE).returncode


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    parser.add_argument(
        "--kafka",
        action="store_true",
        help="also resolve Flink's Kafka connector into var/jars/kafka/",
    )
    parser.add_argument(
        "--test",
        action="store_true",
        help="then check the Java formatting and run the JUnit tests, with a throwaway PostgreSQL",
    )
    parser.add_argument(
        "--format",
        action="store_true",
        help="only reformat the Java sources, main and test (palantir-java-format, via Spotless)",
    )
    parser.add_argument(
        "--fetch-formatter",
        action="store_true",
        help="also download the Java formatter into ~/.m2, checking nothing (.ci/setup does)",
    )
    args = parser.parse_args(argv)
    try:
        if args.format:
            format_java()
            print(f"formatted the Java sources of {JAVA_MODULE}", flush=True)
            return 0
        print(f"sink jar: {sink_jar(force=args.force)}", flush=True)
        if args.kafka:
            jars = kafka_connector_jars()
            print(f"Kafka connector: {len(jars)} jars in {jars[0].parent}", flush=True)
        if args.fetch_formatter:
            fetch_formatter()
            print("Java formatter: in Maven's local repository", flush=True)
        if args.test:
            started = time.monotonic()
            check_java_format()
            print(f"Java formatting: checked in {time.monotonic() - started:.1f} s", flush=True)
            return run_java_tests()
        return 0
    except SinkBuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
