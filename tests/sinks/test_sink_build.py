"""The Java core's Maven build: one jar with the sink, the file format, the stream operators and
the JDBC driver but no Flink classes; rebuilt when pom.xml or a main source changes; kept apart
per var dir. Its formatter check catches a badly formatted source and names the fix."""

import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from localenv import jars
from localenv.paths import PROJECT_ROOT
from sinks import build

pytestmark = [pytest.mark.minicluster]  # needs a JDK and Maven, like the mini cluster tier


def test_the_jar_ships_the_core_and_the_driver_but_not_flink():
    with zipfile.ZipFile(jars.sink_jar()) as jar:
        names = set(jar.namelist())
        drivers = jar.read("META-INF/services/java.sql.Driver").decode()
        manifest = jar.read("META-INF/MANIFEST.MF").decode()
    for cls in [
        "dev/tpc/sink/PostgresTwoPhaseCommitSink.class",
        "dev/tpc/source/NumberedLinesFormat.class",
        "dev/tpc/stream/RowOperators.class",
        "org/postgresql/Driver.class",
    ]:
        assert cls in names
    assert "org.postgresql.Driver" in drivers
    assert "Multi-Release: true" in manifest  # the driver's Java 11 classes stay in use
    assert not [n for n in names if n.startswith(("org/apache/flink/", "org/junit/"))]


def test_the_digest_covers_the_pom_and_main_sources_only():
    inputs = {p.relative_to(jars.JAVA_MODULE).as_posix() for p in jars.build_inputs()}
    assert "pom.xml" in inputs
    assert "src/main/java/dev/tpc/sink/PgWriter.java" in inputs
    assert not [p for p in inputs if p.startswith("src/test/")]


def test_the_pom_builds_against_the_installed_pyflink():
    from pyflink.version import __version__

    assert jars.pom_flink_version() == __version__
    jars.check_flink_version()


def test_missing_maven_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setattr(jars.shutil, "which", lambda name: None)
    with pytest.raises(jars.JarBuildError, match="apt-get install maven"):
        jars.maven_command(tmp_path, offline=True)


def test_another_var_dir_builds_its_own_jar_without_touching_the_shared_one(tmp_path):
    shared = jars.sink_jar()
    before = shared.stat().st_mtime_ns
    other = tmp_path / "var"
    result = subprocess.run(
        [sys.executable, "-m", "sinks.build"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "TPC_VAR_DIR": str(other)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert (other / "jars" / jars.JAR_NAME).is_file()
    assert (
        other / "jars" / (jars.JAR_NAME + ".sha256")
    ).read_text().strip() == jars.sources_digest()
    assert not list((other / "jars").glob("tpc-build-*"))  # Maven's target/ is gone
    assert shared.stat().st_mtime_ns == before


MESSY_JAVA = """package dev.tpc;

import java.util.List;
import java.util.Map;

final class Messy { static int twice(List<String> xs) { return xs.size()*2; } }
"""


def test_the_format_check_names_a_badly_formatted_file_and_the_command_that_fixes_it(tmp_path):
    # A copy of the module's pom with one source: the check is Spotless's, offline from ~/.m2
    # (.ci/setup fetched the formatter), and the real sources are never touched.
    module = tmp_path / "java"
    source = module / "src" / "main" / "java" / "dev" / "tpc" / "Messy.java"
    source.parent.mkdir(parents=True)
    shutil.copy(jars.POM, module / "pom.xml")
    source.write_text(MESSY_JAVA)
    target = tmp_path / "target"

    with pytest.raises(jars.JarBuildError) as failed:
        build.check_java_format(module, build_dir=target)
    message = str(failed.value)
    assert "src/main/java/dev/tpc/Messy.java" in message
    assert message.rstrip().endswith("then review and commit.")
    assert f"Run `{build.FORMAT_COMMAND}` to reformat them" in message

    build.format_java(module, build_dir=target)
    formatted = source.read_text()
    assert "import java.util.Map;" not in formatted  # unused: removed
    assert "        return xs.size() * 2;\n" in formatted  # AOSP style: 4-space indents
    build.check_java_format(module, build_dir=target)  # passes now
