"""The CDS archive of localenv/jvm_archive.py: made once per machine (by bench/jvm_archive.py's
training run), used by every local job's JVM, and when it does not match, ignored without a
word (only start-up time is at stake)."""

import os
import subprocess
import sys

import pytest

from bench.jvm_archive import build as build_archive
from localenv import jvm_archive
from localenv.flink import child_process_environment
from localenv.paths import PROJECT_ROOT

pytestmark = pytest.mark.minicluster

GATEWAY_CLASS = "org.apache.flink.client.python.PythonGatewayServer"
START_GATEWAY = (
    "from localenv.flink import prepare_process_environment\n"
    "prepare_process_environment()\n"
    "from pyflink.java_gateway import get_gateway\n"
    "print(get_gateway().jvm.System.getProperty('java.version'))\n"
)


def gateway_class_sources(tmp_path, **env) -> str:
    """Where the local gateway JVM took each class from, as `-Xlog:class+load` tells it."""
    log = tmp_path / "class-load.log"
    result = subprocess.run(
        [sys.executable, "-c", START_GATEWAY],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=child_process_environment({"JVM_ARGS": f"-Xlog:class+load=info:file={log}", **env}),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "[warning]" not in result.stdout + result.stderr
    return log.read_text()


def test_local_jvms_load_flink_from_the_archive(tmp_path):
    archive = build_archive()  # .ci/setup made it; made here otherwise
    assert archive is not None and archive.is_file()
    sources = gateway_class_sources(tmp_path)
    assert f"{GATEWAY_CLASS} source: shared objects file (top)" in sources


def test_without_the_archive_classes_come_from_the_jars(tmp_path):
    sources = gateway_class_sources(tmp_path, TPC_JVM_ARCHIVE="off")
    assert "shared objects file (top)" not in sources
    assert f"{GATEWAY_CLASS} source: file:" in sources


def test_an_archive_that_does_not_match_is_ignored_quietly(tmp_path):
    """A JVM with another class path (here the default one) cannot map the archive: it must
    run anyway and print nothing about it, since its output may be a job's."""
    archive = build_archive()
    java = jvm_archive._java_executable()
    result = subprocess.run(
        [str(java), *jvm_archive.jvm_options(), "-cp", str(tmp_path), "-version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert archive is not None and result.returncode == 0
    assert "warning" not in (result.stdout + result.stderr).lower()


def test_a_new_class_path_needs_a_new_archive(tmp_path, monkeypatch):
    jar = tmp_path / "flink-dist.jar"
    jar.write_bytes(b"one")
    monkeypatch.setattr(jvm_archive, "_class_path_files", lambda: [jar])
    before = jvm_archive.archive_key()
    jar.write_bytes(b"other")  # a pyflink upgrade
    os.utime(jar, ns=(1, 1))
    assert jvm_archive.archive_key() != before


def test_child_processes_do_not_inherit_the_archive(monkeypatch):
    """A Flink script's JVM (TaskManager, `flink run`) has another class path; a Python child
    adds the archive back for its own gateway."""
    monkeypatch.setenv(
        "JVM_ARGS",
        "-Dkept=1 -XX:SharedArchiveFile=/x.jsa -Xshare:auto -Xlog:cds=off,cds+dynamic=off",
    )
    assert child_process_environment()["JVM_ARGS"] == "-Dkept=1"
