"""Throughput of the sink's commit modes, side by side in one run.

    python -m bench.sink_throughput [--count 200000] [--rounds 2] [--parallelism 2]

Runs the sink's acceptance job, `tests.harness.sink_check` (numbers -> Python map -> sink ->
PostgreSQL, local mini cluster, checkpoints every second), for each mode in interleaved rounds,
so that the shared machine's noise falls on all modes alike, and reports records/s and the ratio
to the at-least-once baseline. Starts its own throwaway PostgreSQL.
"""

import argparse
import json
import re
import statistics
import subprocess
import sys
import time

from localenv.flink import child_process_environment
from localenv.paths import PROJECT_ROOT, sub_dir
from localenv.postgres import LocalPostgres

MODES = ["at_least_once", "prepared", "staged"]


def run_once(db, mode, args, table):
    from sinks.admin import purge

    with db.connect(autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(f"CREATE TABLE {table} (id bigint NOT NULL, v text NOT NULL)")
        # Each round starts from nothing: its sink id forgets the rounds before (a fresh start
        # on a sink id that committed is refused otherwise).
        purge(conn, f"bench_{mode}")
    command = [
        sys.executable,
        "-m",
        "tests.harness.sink_check",
        "--db-url",
        db.jdbc_url,
        "--db-user",
        db.user,
        "--password-env",
        "TPC_BENCH_PASSWORD",
        "--mode",
        mode,
        "--sink-id",
        f"bench_{mode}",
        "--table",
        table,
        "--count",
        str(args.count),
        "--parallelism",
        str(args.parallelism),
        "--checkpoint-interval-ms",
        "1000",
        "--bundle-size",
        "1000",
        "--batch-size",
        "1000",
        "--execution-mode",
        args.execution_mode,
    ]
    env = child_process_environment({"TPC_BENCH_PASSWORD": db.password})
    started = time.monotonic()
    result = subprocess.run(
        command, cwd=PROJECT_ROOT, capture_output=True, text=True, env=env, timeout=900
    )
    wall = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{result.stderr[-3000:]}")
    match = re.search(r"in ([\d.]+) s", result.stdout)
    job_seconds = float(match.group(1))
    with db.connect() as conn:
        rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    if rows != args.count:
        raise SystemExit(f"{mode}: expected {args.count} rows, found {rows}")
    return {
        "mode": mode,
        "job_seconds": job_seconds,
        "wall_seconds": wall,
        "records_per_second": args.count / job_seconds,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--parallelism", type=int, default=2)
    parser.add_argument("--execution-mode", default="process", choices=["process", "thread"])
    args = parser.parse_args(argv)
    results = []
    with LocalPostgres() as server:
        db = server.create_database("bench")
        for round_number in range(args.rounds):
            for mode in MODES if round_number % 2 == 0 else list(reversed(MODES)):
                result = run_once(db, mode, args, "bench_rows")
                result["round"] = round_number
                results.append(result)
                print(
                    f"round {round_number} {mode:>14}: {result['records_per_second']:>9,.0f} rec/s "
                    f"({result['job_seconds']:.1f} s)",
                    flush=True,
                )
    baseline = statistics.median(
        r["records_per_second"] for r in results if r["mode"] == "at_least_once"
    )
    print(
        f"\n{args.count:,} records, parallelism {args.parallelism}, "
        f"{args.execution_mode} mode, {args.rounds} interleaved rounds (median):"
    )
    print("| mode | records/s | vs at-least-once |\n|---|---|---|")
    summary = {}
    for mode in MODES:
        rate = statistics.median(r["records_per_second"] for r in results if r["mode"] == mode)
        summary[mode] = rate
        print(f"| {mode} | {rate:,.0f} | {rate / baseline:.2f} |")
    out = sub_dir("bench") / f"sink_throughput-{int(time.time())}.json"
    out.write_text(json.dumps({"args": vars(args), "runs": results, "median": summary}, indent=2))
    print(f"\nraw results: {out}")


if __name__ == "__main__":
    main()
