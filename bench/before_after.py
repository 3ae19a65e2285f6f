"""The payments job of another checkout (an earlier version) next to this one's, and this one's
with at-least-once sinks: the same generated input, interleaved rounds, a fresh database each.

    git worktree add /tmp/before <commit> && (cd /tmp/before && python -m sinks.build)
    python -m bench.before_after --before /tmp/before [--lines 200000] [--rounds 3]

Prints each run and the medians, and the two ratios the README quotes: this version's
exactly-once default against its at-least-once sinks, and against the earlier version."""

import argparse
import statistics
import subprocess
import sys
import time

from bench.suite import assert_accounted, write_input
from jobs.payments import JOB as PAYMENTS
from localenv.flink import child_process_environment
from localenv.paths import PROJECT_ROOT, sub_dir
from localenv.postgres import LocalPostgres

PASSWORD_ENV = "TPC_BENCH_PASSWORD"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="a checkout of the earlier version")
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    input_dir = sub_dir("bench", f"before-after-{args.lines}")
    lines = write_input(input_dir, args.lines, PAYMENTS)
    variants = {
        "before: exactly-once (default)": (args.before, "exactly-once"),
        "after: exactly-once (default)": (str(PROJECT_ROOT), "exactly-once"),
        "after: at-least-once sinks": (str(PROJECT_ROOT), "at-least-once"),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    with LocalPostgres() as server:
        runs = 0
        for round_number in range(args.rounds + 1):  # round 0 warms up: not counted
            for name, (tree, sinks) in variants.items():
                runs += 1
                db = server.create_database(f"before_after_{runs}")
                command = [
                    *(sys.executable, "-m", "bench.payments_job", "--input", str(input_dir)),
                    *("--db-url", db.jdbc_url, "--db-user", db.user, "--password-env"),
                    *(PASSWORD_ENV, "--sinks", sinks),
                ]
                started = time.monotonic()
                result = subprocess.run(
                    command,
                    cwd=tree,
                    env=child_process_environment({PASSWORD_ENV: db.password}),
                    capture_output=True,
                    text=True,
                )
                seconds = time.monotonic() - started
                if result.returncode:
                    print(f"{name} failed:\n{result.stderr[-3000:]}", file=sys.stderr)
                    return 1
                assert_accounted(db, lines, sinks == "exactly-once", PAYMENTS)
                if round_number:
                    times[name].append(seconds)
                print(f"round {round_number}: {name}: {seconds:.1f} s", flush=True)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"{lines:,} lines, {args.rounds} rounds, medians:")
    for name, values in times.items():
        print(f"  {name}: {medians[name]:.2f} s ({', '.join(f'{v:.1f}' for v in values)})")
    after = medians["after: exactly-once (default)"]
    print(
        f"exactly-once against at-least-once: {medians['after: at-least-once sinks'] / after:.2f}x"
    )
    print(f"after against before: {medians['before: exactly-once (default)'] / after:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
