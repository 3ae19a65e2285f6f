"""Every input entry no run can read is found before anything starts, named exactly, with what
to do (`transforms.inputs.input_faults`); readable and hidden entries are not faults. No JVM:
tests/jobs/test_input_faults.py runs the same entries through the whole job."""

import gzip
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from transforms.inputs import FAULTS, UnreadableInput, input_faults, input_files, shown

JAVA_FAULTS = (
    Path(__file__).parents[2] / "sinks/java/src/main/java/dev/tpc/source/InputFileFault.java"
)
LINES = b'{"a": 1}\n{"a": 2}\n'


def faulty_entries(root: Path) -> dict[str, str]:
    """One entry of every kind of fault under `root`, by kind: the path `input_faults` names."""
    root.mkdir(parents=True, exist_ok=True)
    os.mkfifo(root / "pipe.jsonl")
    bad_name = os.fsencode(root) + b"/bad-\xff-name.jsonl"
    with open(bad_name, "wb") as f:
        f.write(LINES)
    (root / "back\\slash.jsonl").write_bytes(LINES)
    os.symlink("loop-b.jsonl", root / "loop-a.jsonl")
    os.symlink("loop-a.jsonl", root / "loop-b.jsonl")
    os.symlink("missing.jsonl", root / "dangling.jsonl")
    (root / "sub").mkdir()
    os.symlink("..", root / "sub" / "up")
    (root / "plain.jsonl.gz").write_bytes(LINES)
    return {
        "not_regular_file": str(root / "pipe.jsonl"),
        "name_not_utf8": os.fsdecode(bad_name),
        "name_unsupported": str(root / "back\\slash.jsonl"),
        "symlink_loop": str(root / "loop-a.jsonl"),
        "dangling_symlink": str(root / "dangling.jsonl"),
        "not_compressed": str(root / "plain.jsonl.gz"),
    }


def test_every_kind_is_found_and_readable_entries_are_not(tmp_path):
    expected = faulty_entries(tmp_path / "in")
    (tmp_path / "in" / "good.jsonl").write_bytes(LINES)
    (tmp_path / "in" / "good.jsonl.gz").write_bytes(gzip.compress(LINES))
    (tmp_path / "in" / "sub" / "nested.jsonl").write_bytes(LINES)
    found = input_faults(str(tmp_path / "in"))
    kinds = {fault.kind for fault in found}
    assert kinds == set(expected)
    for kind, path in expected.items():
        assert any(f.kind == kind and f.path == path for f in found), kind
    assert {f.path for f in found if f.kind == "symlink_loop"} == {
        str(tmp_path / "in" / name) for name in ("loop-a.jsonl", "loop-b.jsonl", "sub/up")
    }
    readable = {
        str(tmp_path / "in" / n) for n in ("good.jsonl", "good.jsonl.gz", "sub/nested.jsonl")
    }
    assert not readable & {f.path for f in found}


def test_control_a_clean_input_and_hidden_entries_have_no_faults(tmp_path):
    faulty_entries(tmp_path / "in" / ".staging")  # hidden: Flink never lists it
    (tmp_path / "in" / "good.jsonl").write_bytes(LINES)
    os.mkfifo(tmp_path / "in" / "_pipe")
    assert input_faults(str(tmp_path / "in")) == []
    assert input_files(str(tmp_path / "in")) == [str(tmp_path / "in" / "good.jsonl")]


def test_sockets_and_devices_are_not_regular_files(tmp_path):
    (tmp_path / "in").mkdir()
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "in" / "listening.sock"))
    try:
        os.symlink("/dev/null", tmp_path / "in" / "null.jsonl")
        details = {f.detail for f in input_faults(str(tmp_path / "in"))}
    finally:
        server.close()
    assert details == {"a socket", "a character device"}


def test_the_message_names_each_entry_so_that_a_shell_gets_its_exact_bytes(tmp_path):
    expected = faulty_entries(tmp_path / "in")
    message = str(UnreadableInput(input_faults(str(tmp_path / "in"))))
    assert message.startswith("8 input entries cannot be read; nothing was started:\n")
    for kind, path in expected.items():
        problem, remedy = FAULTS[kind]
        assert f"{shown(path)}: {problem}" in message
    # The shell's $'...' gives back the name's bytes, the one that is not UTF-8 included.
    for path in [*expected.values(), "/in/it's a\nname\twith\\ \x1b and é.jsonl"]:
        echoed = subprocess.run(
            ["bash", "-c", f"printf %s {shown(path)}"], capture_output=True, check=True
        ).stdout
        assert echoed == os.fsencode(path)
    assert shown("/in/plain-é.jsonl") == "/in/plain-é.jsonl"


def test_the_same_kinds_as_the_job_source(tmp_path):
    java = JAVA_FAULTS.read_text()
    enum = java[java.index("public enum Kind") : java.index("final String problem")]
    assert set(re.findall(r"^\s+([A-Z0-9_]+)\(", enum, re.M)) == {k.upper() for k in FAULTS}


def privilege_dropped_faults(directory: Path) -> list:
    """`input_faults` as a user without root's way past file permissions (tests run as root)."""
    command = [
        sys.executable,
        "-c",
        "import json, sys; from transforms.inputs import input_faults; "
        "print(json.dumps(input_faults(sys.argv[1])))",
        str(directory),
    ]
    if os.geteuid() == 0:
        drop = "-dac_override,-dac_read_search"
        command = ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}", *command]
    result = subprocess.run(
        command, capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2]
    )
    return [tuple(fault) for fault in json.loads(result.stdout)]


def test_files_and_directories_it_may_not_read(tmp_path):
    (tmp_path / "in" / "closed").mkdir(parents=True)
    (tmp_path / "in" / "closed" / "x.jsonl").write_bytes(LINES)
    (tmp_path / "in" / "secret.jsonl").write_bytes(LINES)
    (tmp_path / "in" / "listable-only").mkdir()
    (tmp_path / "in" / "listable-only" / "y.jsonl").write_bytes(LINES)
    os.chmod(tmp_path / "in" / "closed", 0)
    os.chmod(tmp_path / "in" / "secret.jsonl", 0)
    os.chmod(tmp_path / "in" / "listable-only", 0o444)  # names, but no way to them
    try:
        assert privilege_dropped_faults(tmp_path / "in") == [
            (str(tmp_path / "in" / "closed"), "unreadable_directory", ""),
            (str(tmp_path / "in" / "listable-only"), "unreadable_directory", ""),
            (str(tmp_path / "in" / "secret.jsonl"), "unreadable_file", ""),
        ]
        # Control: the same directory once the permissions are back.
        for path in ("closed", "listable-only", "secret.jsonl"):
            os.chmod(tmp_path / "in" / path, 0o755)
        assert privilege_dropped_faults(tmp_path / "in") == []
    finally:
        for path in ("closed", "listable-only", "secret.jsonl"):
            os.chmod(tmp_path / "in" / path, 0o755)


@pytest.mark.parametrize("name", ["x.gz", "x.GZIP", "x.bz2", "x.xz", "x.deflate"])
def test_a_compressed_name_whose_content_is_not(tmp_path, name):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / name).write_bytes(LINES)
    assert [f.kind for f in input_faults(str(tmp_path / "in"))] == ["not_compressed"]
