"""Parity: the Beam pipeline (DirectRunner) and the payments job (the graph of
`jobs.payments.build_pipeline`, on the mini cluster, into PostgreSQL) give identical ledger,
balances, rejected lines and duplicate count on the corpus plus 10,000 generated events.
"""

import os
import subprocess
import sys
from datetime import timezone
from pathlib import Path

import pytest

from tests.corpus import write_corpus
from tests.jobs.support import payments_config
from transforms.inputs import input_files
from transforms.outputs import load_outputs
from transforms.payments import BalanceRow, LedgerRow, RejectedRow
from transforms.reference import Outcome, process_files, read_lines
from transforms.sample_data import write_jsonl

pytestmark = pytest.mark.minicluster

ROOT = Path(__file__).resolve().parents[2]


def run_job(database, src, tmp_path, files) -> Outcome:
    """The production job's graph on the files of `src`, its tables read back as an Outcome."""
    from jobs.kit.environment import create_environment
    from jobs.kit.line_sources import file_source
    from jobs.payments import build_pipeline, build_sinks, prepare_database

    config = payments_config(database, src, tmp_path, dedupe_ttl_days=7)
    prepare_database(config)
    env = create_environment(config)
    build_pipeline(env, file_source(config.input), build_sinks(config), config)
    env.execute("beam-flink-parity")
    with database.connect() as conn:
        ledger = [
            LedgerRow(*row[:5], row[5].astimezone(timezone.utc).isoformat(timespec="microseconds"))
            for row in conn.execute(
                "SELECT event_id, account_id, type, amount_minor, currency, occurred_at FROM ledger"
            )
        ]
        balances = [
            BalanceRow(account, currency, int(balance), count)
            for account, currency, balance, count in conn.execute(
                "SELECT account_id, currency, balance_minor, event_count FROM balances"
            )
        ]
        rejected = [
            # The job names a file by its path, Beam by its base name.
            RejectedRow(
                row[0],
                row[1],
                os.path.basename(row[2]),
                *row[3:5],
                None if row[5] is None else bytes(row[5]),
            )
            for row in conn.execute(
                "SELECT reason, raw, source, line_number, detail, raw_bytes FROM rejected"
            )
        ]
        duplicates = conn.execute("SELECT count(*) FROM duplicates").fetchone()[0]
    lines = sum(1 for path in files for _ in read_lines(path))
    return Outcome(ledger, balances, rejected, duplicates, lines)


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


def test_beam_pipeline_and_the_payments_job_agree(database, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    write_corpus(src)
    sample = write_jsonl(str(src / "generated.jsonl"), 10000, seed=2026)
    files = input_files(str(src))

    beam_outcome = run_beam(src, tmp_path / "beam")
    flink_outcome = run_job(database, src, tmp_path, files)
    reference = process_files(files)

    assert reference.lines == 119 + len(sample.lines) and len(reference.ledger) >= 10000
    assert flink_outcome.normalised() == beam_outcome.normalised()
    assert beam_outcome.normalised() == reference.normalised()
    for outcome in (beam_outcome, flink_outcome):
        assert outcome.lines == len(outcome.ledger) + outcome.duplicates + len(outcome.rejected)
