"""A job (default `python -m jobs.payments`) as the fault campaign (`python -m tests.campaign`)
runs it, on the mini cluster or with `flink run -pym tests.harness.campaign_job` on a cluster:

    python -m tests.harness.campaign_job [--throttle-every N] [--throttle-ms MS]
        [--fail-marker PATH --fail-after-records N [--fail-armed-by PATH]] [--at-least-once]
        [--setting KEY=VALUE ...] [--sink-batch-size N] [--job MODULE] -- <the job's flags>

The job's own graph and flags. Its one Python operator, the parse, is slowed down (so that
faults land mid-stream) and raises once at a chosen line (`FailOnce` inside it, see
`tests.harness.faults.faults_in_parse`); extra Flink settings (a short checkpoint timeout) and,
for the control, the job's writes at least once: the payments job's own at-least-once sinks
(`JobConfig.at_least_once`), and for a job with the kit's one sink (`build_sink`, whose
statements stay idempotent at least once) plain INSERTs into its line tables instead
(`tests.harness.naive_sink.NaiveTables`, under the job's sink id, so that the audit counts the
replays a key refused). `--job` names any kit job's module (`jobs.orders`): one with
`config_from_args` and `main`, whose parse is `transforms.flink_adapters.parse_lines`'s.
"""

import argparse
import dataclasses
import importlib
import sys

from tests.harness.faults import FailOnce, faults_in_parse
from tests.harness.naive_sink import NaiveTables


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m tests.harness.campaign_job")
    parser.add_argument("--throttle-every", type=int, default=20)
    parser.add_argument("--throttle-ms", type=float, default=3.0)
    parser.add_argument("--fail-marker", help="raise once, in the worker that creates this file")
    parser.add_argument("--fail-after-records", type=int, default=5_000)
    parser.add_argument("--fail-armed-by", help="and only once this file exists")
    parser.add_argument(
        "--at-least-once",
        action="store_true",
        help="the control: every sink of the job at-least-once",
    )
    parser.add_argument(
        "--job", default="jobs.payments", help="the job's module (jobs.payments, jobs.orders)"
    )
    parser.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--sink-batch-size",
        type=int,
        help="rows per sink batch (the fault seam's write phase acts at a transaction's first "
        "full batch: the default scope's 5,000 rows outgrow a trial's checkpoint)",
    )
    return parser.parse_known_args(argv)


def main(argv) -> int:
    args, job_argv = parse_args(argv)
    if job_argv[:1] == ["--"]:
        job_argv = job_argv[1:]
    fault = FailOnce(
        args.fail_marker,
        after_seconds=0,
        after_records=args.fail_after_records,
        armed_by=args.fail_armed_by,
        throttle_every=args.throttle_every,
        throttle_ms=args.throttle_ms,
    )
    extra = dict(setting.split("=", 1) for setting in args.setting)
    changes: dict = {}
    if extra:
        changes["extra_settings"] = extra
    if args.sink_batch_size:
        changes["sink_batch_size"] = args.sink_batch_size
    if args.at_least_once:
        changes["at_least_once"] = True
    job = importlib.import_module(args.job)
    if args.at_least_once and hasattr(job, "build_sink"):
        declared = job.JOB
        job.build_sink = lambda config, *_, **__: NaiveTables(
            config, declared.line_tables, declared.sink_id(config.sink_id_prefix)
        )
    if changes:
        arguments = job.config_from_args
        job.config_from_args = lambda parsed: dataclasses.replace(arguments(parsed), **changes)
    # The fault seam is the job's own parse (tests.harness.faults.faults_in_parse).
    with faults_in_parse(fault):
        return job.main(job_argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
