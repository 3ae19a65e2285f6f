"""The Flink job's file source and the Beam pipeline read the same files of a directory with
nested directories, hidden files and '_' marks: those `transforms.inputs.input_files` lists,
which the reference and the audit replay."""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.transforms.test_inputs import layout
from transforms.inputs import input_files
from transforms.reference import read_lines

pytestmark = pytest.mark.minicluster

ROOT = Path(__file__).resolve().parents[2]

BEAM_LINES_PER_SOURCE = """
import json, sys
import apache_beam as beam
from transforms.pipeline import ReadPaymentLines
with beam.Pipeline(runner="DirectRunner") as pipeline:
    (
        pipeline
        | ReadPaymentLines(sys.argv[1])
        | beam.Map(lambda line: line.source)
        | beam.combiners.Count.PerElement()
        | beam.combiners.ToList()
        | beam.Map(lambda counts: print(json.dumps(dict(counts)), flush=True))
    )
"""


def flink_lines_per_source(input_dir: Path) -> Counter:
    """The payments job's own file source on the mini cluster: lines read, per file (the
    source format names a file by its path; the job keeps the base name)."""
    from pyflink.common import WatermarkStrategy

    from jobs.kit.line_sources import LINE_TYPE, file_source
    from localenv.flink import local_environment
    from sinks import add_sink_jars

    env = local_environment(1)
    add_sink_jars(env)
    lines = env.from_source(
        file_source(str(input_dir)), WatermarkStrategy.no_watermarks(), "files", LINE_TYPE
    )
    with lines.execute_and_collect() as rows:
        return Counter(row[0] for row in rows)


def beam_lines_per_source(input_dir: Path) -> Counter:
    """The Beam pipeline's reader, in its own process (a PyFlink job in this one breaks Beam's
    DirectRunner, see test_beam_flink_parity.py)."""
    result = subprocess.run(
        [sys.executable, "-c", BEAM_LINES_PER_SOURCE, str(input_dir)],
        check=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    return Counter(json.loads(result.stdout.strip().splitlines()[-1]))


def test_the_job_and_the_beam_pipeline_read_the_files_input_files_lists(tmp_path):
    root = tmp_path / "in"
    layout(root)
    files = input_files(str(root))
    per_path = Counter(path for path in files for _ in read_lines(path))
    per_name = Counter(line.source for path in files for line in read_lines(path))
    assert per_name == {"a.jsonl": 1, "b.txt": 2, "c.jsonl": 1, "d.jsonl": 3}
    assert flink_lines_per_source(root) == per_path
    assert beam_lines_per_source(root) == per_name
