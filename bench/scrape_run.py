"""A run watched by Prometheus, drawn: the payments job on a standalone cluster takes a file a
second while Debian's prometheus scrapes it (monitoring/prometheus.yml, every second); midway a
TaskManager is killed with kill -9 and a new one added. Afterwards Prometheus's range queries
over the run go to `<out>/data.json` and a chart, `<out>/chart.svg` (plain SVG, no plotting
library): the rows committed as the job counts them and the lines the database holds, the
commit latency, the restarts.

    python -m bench.scrape_run --out bench/results/2026-12-06-scrape [--seconds 40]

Everything it starts (PostgreSQL, the cluster `scrape-run`, Prometheus and the exporter) is
stopped at the end, also on an error. Needs `prometheus` and `prometheus-postgres-exporter`
(`.ci/setup` installs them) and the ports 9249-9258 of the Flink reporter mostly free.
"""

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from html import escape
from pathlib import Path

from jobs.payments import JOB as PAYMENTS
from localenv.cluster import Cluster, port_free
from localenv.paths import sub_dir
from localenv.postgres import LocalPostgres, free_port
from localenv.prometheus import LocalPrometheus, monitoring
from transforms import sample_data

SINK_ID = "payments-books"
OPERATOR = "flink_taskmanager_job_task_operator_"


def queries(job_id: str) -> dict[str, str]:
    job = f'job_id="{job_id}"'
    return {
        "rows committed: sum(tpcRowsCommitted)": f"sum({OPERATOR}tpcRowsCommitted{{{job}}})",
        "lines in the database: tpc_source_positions_lines": (
            f'max(tpc_source_positions_lines{{sink_id="{SINK_ID}"}})'
        ),
        "commit latency p50 (ms)": (
            f'max({OPERATOR}tpcCommitLatencyMillis{{{job},quantile="0.5"}})'
        ),
        "commit latency p99 (ms)": (
            f'max({OPERATOR}tpcCommitLatencyMillis{{{job},quantile="0.99"}})'
        ),
        "restarts: numRestarts": f"max(flink_jobmanager_job_numRestarts{{{job}}})",
    }


def committed_lines(db) -> int:
    with db.connect() as conn:
        return PAYMENTS.lines_applied(conn)


def wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def run(seconds: int, lines_per_file: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="run-", dir=sub_dir("scrape-run")))
    input_dir = work / "input"
    input_dir.mkdir()
    rest_port = 8081 if port_free(8081) else free_port()
    rpc_port = 6123 if port_free(6123) else free_port()
    cluster = Cluster("scrape-run", rest_port, rpc_port)
    try:
        with LocalPostgres(max_prepared_transactions=64) as server:
            db = server.create_database("scrape_run")
            try:
                cluster.start()
                with monitoring(db, scrape_interval="1s") as prometheus:
                    return watched_run(
                        cluster, db, prometheus, work, input_dir, seconds, lines_per_file
                    )
            finally:
                cluster.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def watched_run(cluster, db, prometheus: LocalPrometheus, work, input_dir, seconds, per_file):
    job_id = cluster.submit_detached(
        [
            *("--input", str(input_dir), "--watch", "300 ms"),
            *("--db-url", db.jdbc_url, "--db-user", db.user),
            *("--password-file", str(db.password_file)),
            *("--checkpoint-interval", "1 s", "--checkpoint-dir", str(work / "checkpoints")),
        ],
        "jobs.payments",
    )
    start = time.time()
    written = 0
    killed_at = None
    try:
        for n in range(seconds):
            staged = work / f".{n}"
            sample = sample_data.write_jsonl(str(staged), per_file, seed=n, id_prefix=f"f{n}")
            staged.rename(input_dir / f"{n:04d}.jsonl")
            written += len(sample.lines)
            if n == seconds // 2:
                victim = cluster.kill_taskmanager()
                killed_at = time.time()
                print(f"killed TaskManager {victim} with kill -9", flush=True)
                cluster.add_taskmanager()
            time.sleep(max(0.0, start + n + 1 - time.time()))
        wait(lambda: committed_lines(db) >= written, 180, f"{written} lines to commit")
        time.sleep(3)  # a few more scrapes of the end
        end = time.time()
        series = {}
        for name, expr in queries(job_id).items():
            # NaN (Flink's quantiles of an empty histogram) as null: JSON has no NaN
            points = prometheus.range_values(expr, start, end)
            series[name] = [(t, None if math.isnan(v) else v) for t, v in points]
    finally:
        if cluster.job_state(job_id) not in ("CANCELED", "FAILED", "FINISHED"):
            cluster.cancel_job(job_id)
    with db.connect() as conn:
        commit_log = conn.execute(
            "SELECT coalesce(sum(row_count), 0) FROM tpc_commit_log WHERE sink_id = %s",
            (SINK_ID,),
        ).fetchone()[0]
    return {
        "job_id": job_id,
        "start": start,
        "end": end,
        "killed_at": killed_at,
        "lines_written": written,
        "lines_committed": committed_lines(db),
        "commit_log_rows": int(commit_log),
        "queries": queries(job_id),
        "series": series,
    }


# -- the chart -------------------------------------------------------------------------------
PANELS = (
    (
        "rows",
        (
            "rows committed: sum(tpcRowsCommitted)",
            "lines in the database: tpc_source_positions_lines",
        ),
    ),
    ("ms", ("commit latency p50 (ms)", "commit latency p99 (ms)")),
    ("restarts", ("restarts: numRestarts",)),
)
COLOURS = ("#1f77b4", "#d62728")
WIDTH, PANEL_HEIGHT, LEFT, RIGHT, TOP, GAP = 760, 150, 70, 20, 40, 45


def segments(points: list, step: float = 1.0) -> list[list]:
    """The stretches of a series without a gap: no sample for over 1.5 steps (the series was
    gone, e.g. with its TaskManager) or null (Flink's quantiles of an empty histogram)."""
    found: list[list] = []
    previous = None
    for t, v in points:
        if v is None:
            previous = None
            continue
        if previous is None or t - previous > 1.5 * step:
            found.append([])
        found[-1].append((t, v))
        previous = t
    return found


def svg_chart(report: dict) -> str:
    start, end = report["start"], report["end"]
    span = max(end - start, 1.0)
    plot_width = WIDTH - LEFT - RIGHT
    height = TOP + len(PANELS) * (PANEL_HEIGHT + GAP)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'font-family="sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
        f'<text x="{LEFT}" y="20" font-size="13">The payments job, scraped every second; '
        f"kill -9 of a TaskManager at the dashed line</text>",
    ]

    def x(t: float) -> float:
        return LEFT + (t - start) / span * plot_width

    for index, (unit, names) in enumerate(PANELS):
        top = TOP + index * (PANEL_HEIGHT + GAP)
        bottom = top + PANEL_HEIGHT
        values = [v for name in names for _, v in report["series"][name] if v is not None]
        high = max(values + [1.0]) * 1.1

        def y(v: float, bottom: float = bottom, high: float = high) -> float:
            return bottom - v / high * PANEL_HEIGHT

        out.append(
            f'<rect x="{LEFT}" y="{top}" width="{plot_width}" height="{PANEL_HEIGHT}" '
            f'fill="none" stroke="#999"/>'
        )
        for tick in (0.0, high / 1.1 / 2, high / 1.1):
            out.append(
                f'<text x="{LEFT - 5}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:,.0f}</text>'
            )
        out.append(
            f'<text x="14" y="{(top + bottom) / 2:.0f}" transform="rotate(-90 14 '
            f'{(top + bottom) / 2:.0f})" text-anchor="middle">{unit}</text>'
        )
        for n, name in enumerate(names):
            colour = COLOURS[n % len(COLOURS)]
            for segment in segments(report["series"][name]):
                path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in segment)
                out.append(
                    f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>'
                )
            label_y = top + 14 + 13 * n
            out.append(f'<text x="{LEFT + 8}" y="{label_y}" fill="{colour}">{escape(name)}</text>')
        if report.get("killed_at"):
            kx = x(report["killed_at"])
            out.append(
                f'<line x1="{kx:.1f}" y1="{top}" x2="{kx:.1f}" y2="{bottom}" stroke="#555" '
                f'stroke-dasharray="4 3"/>'
            )
        for second in range(0, int(span) + 1, 10):
            out.append(
                f'<text x="{x(start + second):.1f}" y="{bottom + 14}" '
                f'text-anchor="middle">{second} s</text>'
            )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for the results")
    parser.add_argument("--seconds", type=int, default=40, help="one file a second this long")
    parser.add_argument("--lines-per-file", type=int, default=500)
    parser.add_argument(
        "--chart-only", action="store_true", help="redraw <out>/chart.svg from <out>/data.json"
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    data = args.out / "data.json"
    if args.chart_only:
        report = json.loads(data.read_text())
    else:
        report = run(args.seconds, args.lines_per_file)
        report["command"] = " ".join(["python -m bench.scrape_run", *(argv or sys.argv[1:])])
        data.write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "chart.svg").write_text(svg_chart(report))
    print(
        f"{report['lines_committed']:,} of {report['lines_written']:,} lines committed, "
        f"commit log {report['commit_log_rows']:,} rows; wrote "
        f"{'' if args.chart_only else f'{data} and '}{args.out / 'chart.svg'}"
    )
    return 0 if report["lines_committed"] == report["lines_written"] else 1


if __name__ == "__main__":
    sys.exit(main())
