"""`transforms.inputs.input_files`: the files a run reads, by Flink's file source's rule (checked
against the real source in test_input_files.py, on the mini cluster)."""

import os

from transforms.inputs import input_files


def layout(root):
    """Nested directories, hidden files and directories, '_' marks, and an empty file."""
    files = {
        "a.jsonl": b"1\n",
        "b.txt": b"1\n2\n",  # any name: the job reads every file, not only *.jsonl
        "empty.jsonl": b"",
        "nested/c.jsonl": b"1\n",
        "nested/deeper/d.jsonl": b"1\n2\n3",
        ".hidden.jsonl": b"x\n",
        "_SUCCESS": b"",
        "_temporary/e.jsonl": b"x\n",
        ".git/f.jsonl": b"x\n",
        "nested/_g.jsonl": b"x\n",
        "nested/.h.jsonl": b"x\n",
    }
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return ["a.jsonl", "b.txt", "empty.jsonl", "nested/c.jsonl", "nested/deeper/d.jsonl"]


def test_a_directory_is_read_recursively_without_hidden_names(tmp_path):
    root = tmp_path / "in"
    expected = layout(root)
    assert input_files(str(root)) == [os.path.join(str(root), name) for name in expected]


def test_a_file_is_itself_and_a_hidden_root_reads_nothing(tmp_path):
    root = tmp_path / "in"
    layout(root)
    assert input_files(str(root / "a.jsonl")) == [str(root / "a.jsonl")]
    assert input_files(str(root / "_temporary")) == []
    assert input_files(str(root / "missing")) == []
