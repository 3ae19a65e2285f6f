"""Beam batch pipeline: JSON-lines payment files -> ledger, balances and rejected files.

For backfills and for checking the Flink job: it reads the same files, runs the same
`PaymentsBusinessStep` and writes the files described in `transforms.outputs`.

    python -m transforms.pipeline --input DIR_OR_FILE_OR_GLOB --output DIR \\
        [--currencies currencies.json] [--runner DirectRunner] [other Beam options]

Any Beam runner is chosen with the usual ``--runner`` option (default: DirectRunner, the
only one that works offline here). A local directory or file is read as the Flink job reads
it (`transforms.inputs.input_files`: recursively, without names starting with ``.`` or ``_``);
a glob or a remote path (``gs://``/``s3://`` where the extra is installed) is matched by Beam's
`FileSystems`. Files are read as bytes, lines end at ``\\n``, numbered from 1 per file;
``source`` is the file's base name.
"""

import argparse
import json
import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any, Optional

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from transforms.beam import PaymentsBusinessStep
from transforms.currencies import load_currencies
from transforms.inputs import input_files
from transforms.lines import SourceLine
from transforms.outputs import row_to_json


class PaymentsOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        # Not required=True: Beam parses every registered options class whenever any
        # PipelineOptions is viewed, so a required flag would break unrelated pipelines.
        parser.add_argument(
            "--input",
            default=None,
            help="(required) a JSON-lines file, a directory (read as the Flink job reads it) "
            "or a glob",
        )
        parser.add_argument(
            "--output", default=None, help="(required) directory for the output files"
        )
        parser.add_argument(
            "--currencies",
            default=None,
            help="JSON currency table (default: transforms/currencies.json)",
        )


def is_local_path(input_path: str) -> bool:
    """A local file or directory (read by `input_files`), not a glob or a remote path."""
    return "://" not in input_path and os.path.exists(input_path)


def read_numbered_lines(readable_file: Any) -> Iterator[SourceLine]:
    """A matched file's lines as `SourceLine` (bytes), numbered from 1."""
    path = readable_file.metadata.path
    source = os.path.basename(path.rstrip("/"))
    with readable_file.open() as f:
        number = 0
        while True:
            line = f.readline()
            if not line:
                break
            number += 1
            yield SourceLine(source, number, line)


class ReadPaymentLines(beam.PTransform[Any, Any]):
    """A local file or directory (the files `input_files` lists), or a file pattern for Beam's
    `FileSystems` -> `SourceLine`s (one file per element, read sequentially)."""

    def __init__(self, input_path: str, label: Optional[str] = None):
        super().__init__(label)
        self.input_path = input_path

    def expand(self, pbegin: Any) -> Any:
        if is_local_path(self.input_path):
            matched = (
                pbegin
                | "InputFiles" >> beam.Create(input_files(self.input_path))
                | "MatchFiles" >> fileio.MatchAll()
            )
        else:
            matched = pbegin | "MatchFiles" >> fileio.MatchFiles(self.input_path)
        return (
            matched
            | "ReadMatches" >> fileio.ReadMatches()
            | "ReadLines" >> beam.FlatMap(read_numbered_lines)
        )


class WriteJsonLines(beam.PTransform[Any, Any]):
    """NamedTuple rows -> ``<directory>/<name>.jsonl`` (one file)."""

    def __init__(self, directory: str, name: str, label: Optional[str] = None):
        super().__init__(label)
        self.directory = directory
        self.name = name

    def expand(self, rows: Any) -> Any:
        return (
            rows
            | "ToJson" >> beam.Map(row_to_json)
            | "Write"
            >> beam.io.WriteToText(
                os.path.join(self.directory, self.name),
                file_name_suffix=".jsonl",
                shard_name_template="",
            )
        )


def _count(pcoll: Any, name: str) -> Any:
    return (
        pcoll
        | f"Count{name.title()}" >> beam.combiners.Count.Globally()
        | f"Name{name.title()}" >> beam.Map(lambda n, key=name: (key, n))
    )


def build_pipeline(pipeline: beam.Pipeline, options: PaymentsOptions) -> Any:
    """Add the read -> business step -> write graph to ``pipeline``; returns the outputs."""
    currencies = load_currencies(options.currencies) if options.currencies else None
    output = options.output
    lines = pipeline | "Read" >> ReadPaymentLines(options.input)
    results = lines | "Payments" >> PaymentsBusinessStep(currencies)
    results["ledger"] | "WriteLedger" >> WriteJsonLines(output, "ledger")
    results["balances"] | "WriteBalances" >> WriteJsonLines(output, "balances")
    results["rejected"] | "WriteRejected" >> WriteJsonLines(output, "rejected")
    counts = [
        _count(lines, "lines"),
        _count(results["ledger"], "ledger"),
        _count(results["duplicates"], "duplicates"),
        _count(results["rejected"], "rejected"),
    ]
    (
        counts
        | "AllCounts" >> beam.Flatten()
        | "Summary" >> beam.combiners.ToDict()
        | "SummaryJson" >> beam.Map(lambda d: json.dumps(dict(sorted(d.items()))))
        | "WriteSummary"
        >> beam.io.WriteToText(
            os.path.join(output, "summary"), file_name_suffix=".json", shard_name_template=""
        )
    )
    return results


def run(argv: Optional[Sequence[str]] = None) -> beam.runners.runner.PipelineResult:
    """Run the pipeline with command-line style arguments; waits until it finishes."""
    options = PipelineOptions(list(argv) if argv is not None else None)
    standard = options.view_as(StandardOptions)
    if not standard.runner:
        standard.runner = "DirectRunner"
    payments = options.view_as(PaymentsOptions)
    if not payments.input or not payments.output:
        raise SystemExit("transforms.pipeline: --input and --output are required")
    os.makedirs(payments.output, exist_ok=True) if "://" not in payments.output else None
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, payments)
    result = pipeline.run()
    result.wait_until_finish()
    return result


def command_line_parser() -> argparse.ArgumentParser:
    """What `--help` lists: this pipeline's options and the runner's. Beam parses the command
    line itself (`PipelineOptions`), and only with the options classes it is asked about, so
    its own `--help` lists none; this parser exists for `--help` (and lets any other Beam
    option through to Beam)."""
    parser = argparse.ArgumentParser(
        prog="python -m transforms.pipeline",
        description=__doc__.splitlines()[0],
        epilog="Any other Beam pipeline option (e.g. --direct_num_workers 2, a runner's own) "
        "goes to Beam as it is.",
        allow_abbrev=False,  # as Beam parses: a prefix of an option is not that option
    )
    PaymentsOptions._add_argparse_args(parser)
    StandardOptions._add_argparse_args(parser)
    return parser


def main(argv: Optional[list[str]] = None) -> None:
    command_line_parser().parse_known_args(argv)  # prints the help and exits on --help
    logging.getLogger().setLevel(logging.WARNING)
    run(argv)


if __name__ == "__main__":
    main()
