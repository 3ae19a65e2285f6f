"""The project's jars, built or resolved by Maven on first use: what the local JVMs load and
what a job ships to a cluster.

`sink_jar()` is the Maven module `sinks/java` (the sink, the source formats, the stream
operators, with the PostgreSQL JDBC driver shaded in) built into `var/jars/tpc-connectors.jar`,
again whenever `pom.xml` or a source under `src/main` changed. `kafka_connector_jars()` are
Flink's Kafka connector and the Kafka client (`sinks/kafka/pom.xml`) in `var/jars/kafka/`.
`fault_injection_jar()` is the sink's fault injection, a test jar kept out of `sink_jar()`
(`sinks/faults/pom.xml`, from the sink module's test sources) in
`var/jars/tpc-fault-injection.jar`; a job ships it when `TPC_SINK_HOOK_JARS` names it
(`hook_jars()`), as the fault tests arrange.

Here, beside `localenv.maven`, and not in `sinks`: the local cluster ships them with every job
it submits (`localenv.cluster`), and `localenv` must not import `sinks` (see
tests/test_package_floors.py); `sinks` adds them to a job's environment from here.
`python -m sinks.build` is the command that builds them ahead of time, checks the Java
formatting and runs the JUnit tests.
"""

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Optional

from localenv.maven import (
    MavenError,
    copy_dependencies,
    explain_failure,
    locked,
    offline_first,
    tail,
)
from localenv.paths import PROJECT_ROOT, sub_dir

JAVA_MODULE = PROJECT_ROOT / "sinks" / "java"
POM = JAVA_MODULE / "pom.xml"
MAIN_SOURCES = JAVA_MODULE / "src" / "main"
KAFKA_POM = PROJECT_ROOT / "sinks" / "kafka" / "pom.xml"
JAR_NAME = "tpc-connectors.jar"  # the sink, a numbered-lines file format, stream operators, pgjdbc
FAULTS_POM = PROJECT_ROOT / "sinks" / "faults" / "pom.xml"
FAULT_SOURCES = [
    JAVA_MODULE / "src" / "test" / "java" / "dev" / "tpc" / "sink" / "faults",
    JAVA_MODULE / "src" / "test" / "resources" / "META-INF" / "services",
]
FAULT_JAR_NAME = "tpc-fault-injection.jar"  # SinkHooks that inject faults: tests only
# Jars (os.pathsep-separated paths) of SinkHooks implementations a job ships beside the sink's.
HOOK_JARS = "TPC_SINK_HOOK_JARS"


class JarBuildError(RuntimeError):
    """A jar could not be built or resolved; the message says what to install or change."""


def build_inputs():
    return [POM, *sorted(p for p in MAIN_SOURCES.rglob("*") if p.is_file())]


def digest_of(paths, root: Path = JAVA_MODULE) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def sources_digest() -> str:
    return digest_of(build_inputs())


def fault_inputs():
    return [
        FAULTS_POM,
        *sorted(p for d in FAULT_SOURCES for p in d.rglob("*") if p.is_file()),
    ]


def pom_flink_version() -> str:
    found = re.search(r"<flink\.version>([^<]+)</flink\.version>", POM.read_text())
    if not found:
        raise JarBuildError(f"{POM} defines no flink.version property")
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
        raise JarBuildError(
            f"{POM} builds against Flink {wanted}, but the installed pyflink is {installed}: "
            f"set flink.version in the pom to {installed} (the jar must match the Flink that "
            "runs it)"
        )


def maven_command(
    build_dir: Path, offline: bool, goals=("package",), tests: bool = False, pom: Path = POM
):
    mvn = shutil.which("mvn")
    if not mvn:
        raise JarBuildError(
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
        raise JarBuildError(
            f"Maven did not finish in {MAVEN_TIMEOUT_S} s: {' '.join(map(str, command))}"
        ) from expired


def maven_offline_first(
    build_dir: Path, goals, pom: Path = POM, what: str = "the sink's build"
) -> subprocess.CompletedProcess:
    """Maven's result for `goals`, offline from the local repository first, online once when
    that fails (`localenv.maven.offline_first`). A failure to get a plugin or a dependency
    raises `JarBuildError` saying so (an unreachable Maven Central, a missing artifact); any
    other result is returned for the caller to judge."""
    result, _ = offline_first(
        lambda offline: _maven(
            maven_command(build_dir, offline=offline, goals=goals, pom=pom), cwd=pom.parent
        ),
        "localenv.jars: downloading the Java dependencies into Maven's local repository (once)",
    )
    explained = explain_failure(result, what)
    if explained:
        raise JarBuildError(explained)
    return result


def run_maven(build_dir: Path) -> None:
    """`mvn package` offline from `~/.m2`; online only when something was never downloaded."""
    if not shutil.which("javac"):
        raise JarBuildError(
            "building the sink needs a JDK (javac), not just a Java runtime. Install one "
            "(Debian: `apt-get install openjdk-17-jdk-headless`) and run `python -m sinks.build`."
        )
    result = maven_offline_first(
        build_dir, ("package",), what="the sink's dependencies (Flink, the JDBC driver, plugins)"
    )
    if result.returncode != 0:
        raise JarBuildError(f"Maven build of {JAVA_MODULE} failed:\n{tail(result, 40)}")


def _installed_jar(name: str, digest: str, build, force: bool) -> Path:
    """`var/jars/<name>`, made by `build(build_dir)` (which leaves `build_dir/<name>`) unless
    it is there and was made from inputs of the same `digest`."""
    out_dir = sub_dir("jars")
    jar = out_dir / name
    stamp = out_dir / (name + ".sha256")

    def up_to_date():
        return jar.is_file() and stamp.is_file() and stamp.read_text().strip() == digest

    if not force and up_to_date():
        return jar
    # One build at a time per var dir; whoever waited finds the jar built.
    with locked(out_dir / (name + ".lock")):
        if not force and up_to_date():
            return jar
        # Maven's target/ lives in a fresh directory of this var dir: builds for other var
        # dirs never share it, and nothing stale from a removed source survives.
        with tempfile.TemporaryDirectory(prefix="tpc-build-", dir=out_dir) as tmp:
            build_dir = Path(tmp) / "target"
            build(build_dir)
            os.replace(build_dir / name, jar)  # atomic: concurrent users never see half a jar
        stamp.write_text(digest + "\n")
    return jar


def sink_jar(force: bool = False) -> Path:
    """Path of the built jar, building it if missing or older than pom.xml and the sources."""

    def build(build_dir: Path) -> None:
        check_flink_version()
        run_maven(build_dir)

    return _installed_jar(JAR_NAME, sources_digest(), build, force)


def fault_injection_jar(force: bool = False) -> Path:
    """The fault-injection test jar (`sinks/faults/pom.xml`): `dev.tpc.sink.faults`, the
    `SinkHooks` the fault tests ship beside `sink_jar()`, which holds no fault injection.
    Built against `sink_jar()`, again whenever its sources or the sink's change."""
    sink = sink_jar()

    def build(build_dir: Path) -> None:
        result = maven_offline_first(
            build_dir,
            (f"-Dtpc.sink.jar={sink}", "package"),
            pom=FAULTS_POM,
            what="the fault-injection test jar's plugins",
        )
        if result.returncode != 0:
            raise JarBuildError(f"Maven build of {FAULTS_POM} failed:\n{tail(result, 40)}")

    digest = digest_of(fault_inputs(), PROJECT_ROOT) + sources_digest()
    return _installed_jar(FAULT_JAR_NAME, digest, build, force)


def hook_jars(environment: Optional[Mapping[str, str]] = None) -> list[Path]:
    """The jars `TPC_SINK_HOOK_JARS` names in `environment` (this process's by default): what a
    job ships beside `sink_jar()` so that the sink finds the hooks in them (`SinkHooks`: the
    fault tests' fault injection)."""
    value = (os.environ if environment is None else environment).get(HOOK_JARS, "")
    jars = [Path(p) for p in value.split(os.pathsep) if p]
    missing = [str(jar) for jar in jars if not jar.is_file()]
    if missing:
        raise JarBuildError(
            f"{HOOK_JARS} names {', '.join(missing)}, which is not a file: build the "
            "fault-injection test jar with `python -m sinks.build --faults`, or unset "
            f"{HOOK_JARS}"
        )
    return jars


def kafka_connector_jars() -> list[Path]:
    """Flink's Kafka connector and the Kafka client, in var/jars/kafka/ (resolved by Maven from
    sinks/kafka/pom.xml on first use): what a job reading Kafka ships beside `sink_jar()`."""
    try:
        return copy_dependencies(KAFKA_POM, sub_dir("jars") / "kafka", "Flink's Kafka connector")
    except MavenError as error:
        raise JarBuildError(str(error)) from error
