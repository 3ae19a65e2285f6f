"""The file-to-file Beam pipeline (`python -m transforms.pipeline`) on the DirectRunner."""

import json
import subprocess
import sys

import pytest

from tests.corpus import write_corpus
from transforms import pipeline as bp
from transforms.inputs import input_files
from transforms.outputs import load_outputs
from transforms.reference import process_files
from transforms.sample_data import write_jsonl

pytestmark = pytest.mark.beam


def test_pipeline_matches_the_reference_on_corpus_and_generated_files(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    write_corpus(src)
    write_jsonl(str(src / "generated.jsonl"), 2000, seed=9)
    bp.run(["--input", str(src), "--output", str(tmp_path / "out")])
    got = load_outputs(str(tmp_path / "out"))
    want = process_files(input_files(str(src)))
    assert got.normalised() == want.normalised()
    assert got.lines == want.lines == len(got.ledger) + got.duplicates + len(got.rejected)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary == {
        "duplicates": want.duplicates,
        "ledger": len(want.ledger),
        "lines": want.lines,
        "rejected": len(want.rejected),
    }


def test_command_line_with_currency_file(tmp_path):
    (tmp_path / "in.jsonl").write_bytes(
        b'{"event_id": "1", "account_id": "a", "type": "charge", "amount": "5", '
        b'"currency": "ISK", "occurred_at": "2024-01-01T00:00:00Z"}\n\n'
    )
    (tmp_path / "cur.json").write_text('{"ISK": 0}')
    subprocess.run(
        [
            sys.executable,
            "-m",
            "transforms.pipeline",
            "--input",
            str(tmp_path / "in.jsonl"),
            "--output",
            str(tmp_path / "out"),
            "--currencies",
            str(tmp_path / "cur.json"),
            "--runner=DirectRunner",
        ],
        check=True,
        cwd=bp.__file__.rsplit("/", 2)[0],
        capture_output=True,
    )
    out = load_outputs(str(tmp_path / "out"))
    assert [(r.account_id, r.amount_minor) for r in out.ledger] == [("a", 5)]
    assert [(r.reason, r.source, r.line_number) for r in out.rejected] == [
        ("empty_line", "in.jsonl", 2)
    ]


def test_help_lists_the_options():
    """Beam's own parser would print an empty usage: the command's `--help` lists the pipeline's
    options and the runner's, and runs nothing."""
    shown = subprocess.run(
        [sys.executable, "-m", "transforms.pipeline", "--help"],
        cwd=bp.__file__.rsplit("/", 2)[0],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert shown.startswith("usage: python -m transforms.pipeline")
    for option in ("--input", "--output", "--currencies", "--runner"):
        assert option in shown, option
