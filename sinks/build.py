"""Build the Java core into one jar: `python -m sinks.build [--force] [--test]`.

`sinks/java` is a Maven module. `mvn package` compiles it against Flink (provided: the cluster
and pyflink have those classes, at exactly the installed pyflink's version) and shades in the
PostgreSQL JDBC driver, so jobs ship one jar. The jar lands in `var/jars/` (never committed) and
is rebuilt when `pom.xml` or a source under `src/main` changes. The first build downloads the
dependencies from Maven Central into `~/.m2`; later builds run offline. `sink_jar()` (in
`localenv.jars`, which the local cluster uses too) builds on first use, so a fresh clone works
without this step; running it during setup only moves the wait (and a missing JDK, Maven or
network) up front.

`--kafka` also resolves Flink's Kafka connector and the Kafka client (`sinks/kafka/pom.xml`) into
`var/jars/kafka/`: jobs that read Kafka ship those jars beside the sink's (`add_kafka_jars`).

`--faults` also builds the fault-injection test jar (`sinks/faults/pom.xml`, from the sink
module's test sources `src/test/java/dev/tpc/sink/faults`) into `var/jars/tpc-fault-injection.jar`:
the sink's own jar holds no fault injection, and the tests that inject faults ship this one
beside it (`TPC_SINK_HOOK_JARS`). They build it on first use too.

`--test` runs the JUnit tests (`mvn test`, into `var/java-test/`) against a throwaway PostgreSQL
for those that need a database. A plain `mvn test` in `sinks/java` runs them too, but skips the
database-backed ones unless `TPC_TEST_JDBC_URL`, `TPC_TEST_DB_USER` and `TPC_TEST_DB_PASSWORD`
name a server. Before the tests, `--test` checks that the Java sources (main and test) are
formatted (palantir-java-format through Spotless, `spotless:check`) and stops if one is not:
`--format` reformats them (`spotless:apply`). `--fetch-formatter` downloads the formatter into
`~/.m2` (`.ci/setup` does, so the check runs offline).
"""

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from localenv.jars import (
    JAVA_MODULE,
    JarBuildError,
    fault_injection_jar,
    kafka_connector_jars,
    maven_command,
    maven_offline_first,
    sink_jar,
)
from localenv.maven import tail
from localenv.paths import sub_dir

FORMAT_COMMAND = "python -m sinks.build --format"
# By full coordinates, not the `spotless:` prefix (see localenv.maven); the pom sets the version.
SPOTLESS_PLUGIN = "com.diffplug.spotless:spotless-maven-plugin"


def _spotless(goal: str, module: Path, build_dir: Optional[Path], *options: str):
    # Spotless keeps an index of the files it found formatted in the build directory, so a
    # second check only reads what changed.
    build_dir = build_dir or sub_dir("java-format")
    return maven_offline_first(
        build_dir,
        (*options, f"{SPOTLESS_PLUGIN}:{goal}"),
        pom=module / "pom.xml",
        what="the Java formatter (Spotless, palantir-java-format)",
    )


def check_java_format(module: Path = JAVA_MODULE, build_dir: Optional[Path] = None) -> None:
    """Raise `JarBuildError`, naming the files with their diff and the command that fixes them,
    unless every Java source of `module` (main and test) is as `format_java()` would leave it."""
    result = _spotless("check", module, build_dir)
    if result.returncode == 0:
        return
    lines = [re.sub(r"^\[ERROR\] ?", "", line) for line in tail(result, 400).splitlines()]
    start = next((i for i, line in enumerate(lines) if "format violations" in line), None)
    if start is None:  # not a verdict on the formatting: a file it cannot parse, say
        raise JarBuildError(f"Spotless could not check the Java sources:\n{tail(result, 40)}")
    end = next((i for i, line in enumerate(lines) if "spotless:apply" in line), len(lines))
    report = [lines[start][lines[start].index("The following") :], *lines[start + 1 : end]]
    raise JarBuildError(
        "\n".join(report[:60])
        + f"\nThe Java sources of {module} are not formatted (palantir-java-format, AOSP style, "
        f"checked by Spotless). Run `{FORMAT_COMMAND}` to reformat them, then review and commit."
    )


def format_java(module: Path = JAVA_MODULE, build_dir: Optional[Path] = None) -> None:
    """Reformat every Java source of `module` in place (`mvn spotless:apply`)."""
    result = _spotless("apply", module, build_dir)
    if result.returncode != 0:
        raise JarBuildError(f"formatting the Java sources of {module} failed:\n{tail(result)}")


def fetch_formatter(module: Path = JAVA_MODULE) -> None:
    """Download Spotless and the formatter into `~/.m2` without checking a file (a pattern that
    matches none): `.ci/setup` does, so that the check later runs offline."""
    result = _spotless("check", module, None, "-DspotlessFiles=^$")
    if result.returncode != 0:
        raise JarBuildError(f"Maven could not resolve the Java formatter:\n{tail(result)}")


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
        "--faults",
        action="store_true",
        help="also build the fault-injection test jar into var/jars/ (the fault tests ship it)",
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
        if args.faults:
            print(f"fault-injection test jar: {fault_injection_jar(force=args.force)}", flush=True)
        if args.fetch_formatter:
            fetch_formatter()
            print("Java formatter: in Maven's local repository", flush=True)
        if args.test:
            started = time.monotonic()
            check_java_format()
            print(f"Java formatting: checked in {time.monotonic() - started:.1f} s", flush=True)
            return run_java_tests()
        return 0
    except JarBuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
