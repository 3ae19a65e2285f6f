"""Every kind of Maven goal the project runs works from an empty local repository (issue 22).

A Maven call that only works because an earlier run filled `~/.m2` passes on every developer's
machine and fails for every new user, so the tests that run Maven give it an empty local
repository (`-Dmaven.repo.local`) and resolve from Maven Central: the sink's own build section
(`package`, `test`), the formatter (Spotless) and the dependency plugin that copies jars into
`var/`. Only plugins are downloaded again, a few tens of MB: the sink's module is built with its
plugins as they are but with JUnit in place of Flink's jars, which `.ci/setup` already resolved.

The offline-first rule itself, and the messages for an unreachable or an incomplete repository,
are checked without the network (a mirror on a closed port, a mirror that is an empty folder).
"""

import os
import subprocess
from pathlib import Path

import pytest

from localenv import jars, maven
from sinks import build

JUNIT_ONLY = """
    <dependencies>
        <dependency>
            <groupId>org.junit.jupiter</groupId>
            <artifactId>junit-jupiter</artifactId>
            <version>${junit.version}</version>
            <scope>test</scope>
        </dependency>
    </dependencies>
"""
ONE_SMALL_JAR = """
    <dependencies>
        <dependency>
            <groupId>org.slf4j</groupId>
            <artifactId>slf4j-api</artifactId>
            <version>1.7.36</version>
        </dependency>
    </dependencies>
"""
CLASS = """package dev.tpc.cold;

/** Compiled, tested and formatted by a Maven that starts from nothing. */
public final class Twice {
    private Twice() {}

    public static int of(int value) {
        return value * 2;
    }
}
"""
TEST = """package dev.tpc.cold;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class TwiceTest {
    @Test
    void doubles() {
        assertEquals(4, Twice.of(2));
    }
}
"""


def with_dependencies(pom_text: str, dependencies: str) -> str:
    """`pom_text` with its project-level <dependencies> replaced (dependencyManagement and the
    build section are kept as they are)."""
    start = pom_text.index("<dependencies>", max(0, pom_text.find("</dependencyManagement>")))
    end = pom_text.index("</dependencies>", start) + len("</dependencies>")
    return pom_text[:start] + dependencies.strip() + pom_text[end:]


def completed(returncode: int, output: str) -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess([], returncode, stdout=output, stderr="")


def maven_opts(monkeypatch, **properties: Path) -> None:
    """MAVEN_OPTS for every Maven this test starts, after any the caller had: a later -D wins."""
    added = " ".join(f"-D{name.replace('_', '.')}={value}" for name, value in properties.items())
    monkeypatch.setenv("MAVEN_OPTS", f"{os.environ.get('MAVEN_OPTS', '')} {added}".strip())


@pytest.fixture
def empty_repository(tmp_path, monkeypatch) -> Path:
    repository = tmp_path / "m2-repository"
    repository.mkdir()
    maven_opts(monkeypatch, maven_repo_local=repository)
    return repository


@pytest.fixture
def sink_like_module(tmp_path) -> Path:
    """The sink's Maven module: its pom's build section as it is, JUnit instead of Flink, one
    class and its test."""
    module = tmp_path / "java"
    for path, text in [
        ("pom.xml", with_dependencies(jars.POM.read_text(), JUNIT_ONLY)),
        ("src/main/java/dev/tpc/cold/Twice.java", CLASS),
        ("src/test/java/dev/tpc/cold/TwiceTest.java", TEST),
    ]:
        (module / path).parent.mkdir(parents=True, exist_ok=True)
        (module / path).write_text(text)
    return module


def one_jar_pom(tmp_path) -> Path:
    """The Kafka connector's pom (its dependency plugin as it is), asking for one small jar."""
    pom = tmp_path / "one-jar" / "pom.xml"
    pom.parent.mkdir()
    pom.write_text(with_dependencies(jars.KAFKA_POM.read_text(), ONE_SMALL_JAR))
    return pom


def mirror_settings(tmp_path, monkeypatch, url: str) -> None:
    """Maven's user settings send every repository to `url` (user.home is where Maven reads
    ~/.m2/settings.xml from)."""
    home = tmp_path / "home"
    (home / ".m2").mkdir(parents=True)
    (home / ".m2" / "settings.xml").write_text(
        "<settings><mirrors><mirror><id>only</id><mirrorOf>*</mirrorOf>"
        f"<url>{url}</url></mirror></mirrors></settings>"
    )
    maven_opts(monkeypatch, user_home=home)


# --- the rule, without Maven ---------------------------------------------------------------


@pytest.mark.parametrize(
    "offline_output",
    [
        # the message that hid issue 22: a goal's prefix, with its plugin not yet downloaded
        "[ERROR] No plugin found for prefix 'dependency' in the current project and in the "
        "plugin groups [org.apache.maven.plugins, org.codehaus.mojo] available from the "
        "repositories [local (/root/.m2/repository), central (https://repo.maven.apache.org)]",
        "[ERROR] Plugin org.apache.maven.plugins:maven-dependency-plugin:3.8.1 or one of its "
        "dependencies could not be resolved: Cannot access central (https://repo.maven.apache."
        "org/maven2) in offline mode and the artifact ... has not been downloaded from it before.",
        "[ERROR] something Maven has never said before",
    ],
)
def test_any_offline_failure_but_a_verdict_on_the_code_goes_online_once(offline_output):
    calls = []

    def run(offline):
        calls.append(offline)
        return completed(1 if offline else 0, offline_output if offline else "")

    result, went_online = maven.offline_first(run, "going online")
    assert calls == [True, False] and went_online and result.returncode == 0


@pytest.mark.parametrize(
    "verdict",
    [
        "[ERROR] COMPILATION ERROR :",
        "[ERROR] There are test failures.",
        "[ERROR] The following files had format violations:",
    ],
)
def test_a_verdict_on_the_code_is_final_offline(verdict):
    calls = []

    def run(offline):
        calls.append(offline)
        return completed(1, verdict)

    result, went_online = maven.offline_first(run, "going online")
    assert calls == [True] and not went_online and result.returncode == 1
    assert maven.explain_failure(result, "the build") is None  # the caller reports it


# --- real Maven, from nothing --------------------------------------------------------------

# The tests below need a JDK and Maven, like the mini cluster tier.


@pytest.mark.minicluster
def test_the_sinks_build_section_packages_and_tests_from_an_empty_repository(
    empty_repository, sink_like_module, tmp_path
):
    target = tmp_path / "target"
    pom = sink_like_module / "pom.xml"
    result = jars.maven_offline_first(target, ("package",), pom=pom)
    assert result.returncode == 0, maven.tail(result)
    assert (target / "tpc-connectors.jar").is_file()

    # As `sinks.build --test` runs the JUnit tests: Surefire fetches its JUnit provider then.
    command = jars.maven_command(target, offline=False, goals=("test",), tests=True, pom=pom)
    tested = subprocess.run(command, cwd=sink_like_module, capture_output=True, text=True)
    assert tested.returncode == 0, maven.tail(tested)
    assert "Tests run: 1, Failures: 0, Errors: 0, Skipped: 0" in tested.stdout


@pytest.mark.minicluster
def test_the_formatter_checks_from_an_empty_repository(
    empty_repository, sink_like_module, tmp_path
):
    build.check_java_format(sink_like_module, build_dir=tmp_path / "target")
    assert list(empty_repository.glob("com/palantir/javaformat/*"))


@pytest.mark.minicluster
def test_jars_are_copied_into_var_from_an_empty_repository(empty_repository, tmp_path):
    jars = maven.copy_dependencies(one_jar_pom(tmp_path), tmp_path / "lib", "one jar")
    assert [jar.name for jar in jars] == ["slf4j-api-1.7.36.jar"]


@pytest.mark.minicluster
def test_an_unreachable_maven_central_is_said_so_with_the_setting_to_change(
    empty_repository, sink_like_module, tmp_path, monkeypatch
):
    from localenv.postgres import free_port

    mirror_settings(tmp_path, monkeypatch, f"http://127.0.0.1:{free_port()}/maven2")
    with pytest.raises(maven.MavenError) as copying:
        maven.copy_dependencies(one_jar_pom(tmp_path), tmp_path / "lib", "one jar")
    with pytest.raises(jars.JarBuildError) as formatting:
        build.fetch_formatter(sink_like_module)
    for failure, what in [(copying, "one jar"), (formatting, "the Java formatter")]:
        message = str(failure.value)
        assert message.startswith(f"Maven could not resolve {what}")
        assert "could not be reached" in message
        assert "~/.m2/settings.xml (<proxies> or <mirrors>)" in message


@pytest.mark.minicluster
def test_a_plugin_the_repository_lacks_is_reported_as_missing(
    empty_repository, tmp_path, monkeypatch
):
    empty_mirror = tmp_path / "empty-mirror"
    empty_mirror.mkdir()
    mirror_settings(tmp_path, monkeypatch, empty_mirror.as_uri())
    with pytest.raises(maven.MavenError) as failure:
        maven.copy_dependencies(one_jar_pom(tmp_path), tmp_path / "lib", "one jar")
    message = str(failure.value)
    assert "Plugin org.apache.maven.plugins:maven-dependency-plugin:3.8.1" in message
    assert "has no such artifact" in message
    assert "could not be reached" not in message
