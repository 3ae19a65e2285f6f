"""Parity: the Beam pipeline (DirectRunner) and the PyFlink adapters give identical ledger,
balances, rejected lines and duplicate count on the corpus plus 10,000 generated events.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.corpus import write_corpus
from transforms.outputs import load_outputs
from transforms.reference import Outcome, input_files, process_files, read_lines
from transforms.sample_data import write_jsonl

pytestmark = pytest.mark.minicluster

ROOT = Path(__file__).resolve().parents[2]


def run_flink(files):
    from localenv.flink import local_environment
    from transforms import flink_adapters as fa

    env = local_environment(parallelism=2)
    lines = [line for path in files for line in read_lines(path)]
    # the collection source has parallelism 1; parsing at 1 keeps per-key order (as a
    # FileSource with a chained parse does within a file); dedupe/balances run at 2
    out = fa.payments_business_step(
        fa.source_lines_stream(env, lines), parse_parallelism=1, dedupe_ttl_days=7
    )
    p = fa.PICKLED
    tagged = out.ledger.map(lambda r: ("ledger", r), output_type=p).union(
        out.balances.map(lambda r: ("balance", r), output_type=p),
        out.rejected.map(lambda r: ("rejected", r), output_type=p),
        out.duplicates.map(lambda r: ("duplicate", r), output_type=p),
    )
    with tagged.execute_and_collect() as results:
        got = list(results)
    rows = {"ledger": [], "balance": [], "rejected": [], "duplicate": []}
    for label, row in got:
        rows[label].append(row)
    return Outcome(
        rows["ledger"],
        fa.final_balances(rows["balance"]),
        rows["rejected"],
        len(rows["duplicate"]),
        len(lines),
    )


def run_beam(src, out):
    """The Beam pipeline in its own process: PyFlink's local (loopback) execution registers
    its own ParDo operation factory in Beam's worker, process-wide, after which a Beam
    DirectRunner pipeline in the same process fails (protobuf DecodeError)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "transforms.pipeline",
            "--input",
            str(src),
            "--output",
            str(out),
            "--runner=DirectRunner",
        ],
        check=True,
        cwd=ROOT,
    )
    return load_outputs(str(out))


def test_beam_pipeline_and_pyflink_adapters_agree(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    write_corpus(src)
    sample = write_jsonl(str(src / "generated.jsonl"), 10000, seed=2026)
    files = input_files(str(src))

    beam_outcome = run_beam(src, tmp_path / "beam")
    flink_outcome = run_flink(files)
    reference = process_files(files)

    assert reference.lines == 119 + len(sample.lines) and len(reference.ledger) >= 10000
    assert flink_outcome.normalised() == beam_outcome.normalised()
    assert beam_outcome.normalised() == reference.normalised()
    for outcome in (beam_outcome, flink_outcome):
        assert outcome.lines == len(outcome.ledger) + outcome.duplicates + len(outcome.rejected)
