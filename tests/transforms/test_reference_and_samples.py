"""The pure reference step and the sample-data generator."""

from transforms import sample_data
from transforms.inputs import input_files
from transforms.lines import SourceLine
from transforms.reference import process_files, process_lines, read_lines


def test_generator_is_deterministic_and_shares_are_respected():
    a = sample_data.generate(2000, seed=11)
    assert a == sample_data.generate(2000, seed=11)
    assert a.lines != sample_data.generate(2000, seed=12).lines
    assert (a.events, a.duplicates, a.conflicts, a.bad) == (2000, 100, 20, 40)
    assert len(a.lines) == 2160 and all(line.endswith(b"\n") for line in a.lines)
    outcome = process_lines(a.lines)
    assert len(outcome.ledger) == a.events
    assert outcome.duplicates == a.duplicates
    conflicts = [r for r in outcome.rejected if r.reason == "conflicting_duplicate"]
    assert len(conflicts) == a.conflicts
    assert len(outcome.rejected) == a.conflicts + a.bad


def test_generator_without_extras_is_all_ledger():
    lines = sample_data.generate_lines(
        300, seed=1, duplicate_share=0, conflict_share=0, bad_share=0
    )
    assert len(process_lines(lines).ledger) == 300


def test_files_are_read_as_bytes_with_positions(tmp_path):
    sample_data.write_jsonl(str(tmp_path / "b.jsonl"), 50, seed=2)
    (tmp_path / "a.jsonl").write_bytes(b'\xff\n\n{"x": 1}')  # no final newline
    files = input_files(str(tmp_path))
    assert [f.rsplit("/", 1)[1] for f in files] == ["a.jsonl", "b.jsonl"]
    assert list(read_lines(files[0])) == [
        SourceLine("a.jsonl", 1, b"\xff\n"),
        SourceLine("a.jsonl", 2, b"\n"),
        SourceLine("a.jsonl", 3, b'{"x": 1}'),
    ]
    outcome = process_files(files)
    assert [(r.source, r.line_number, r.reason) for r in outcome.rejected[:3]] == [
        ("a.jsonl", 1, "invalid_encoding"),
        ("a.jsonl", 2, "empty_line"),
        ("a.jsonl", 3, "missing_field"),
    ]
    assert outcome.lines == 3 + 50 + 2 + 0 + 1  # events + round() of each share
