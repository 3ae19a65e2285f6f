"""Make this machine's CDS archive of Flink's classes (`localenv/jvm_archive.py`):
`python -m bench.jvm_archive [--force]`, which `.ci/setup` runs.

The training run is the payments job as the benchmarks run it (`bench.payments_job`), on 1,000
generated lines and with discarding sinks, so no database is needed: the classes a local job
loads before its first record moves are those the archive should hold. It lives here, above the
jobs, because `localenv` (the bottom floor) must not run a job of its own accord.
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from localenv import jvm_archive
from localenv.paths import PROJECT_ROOT
from transforms import sample_data

TRAINING_LINES = 1000
TRAINING_TIMEOUT_S = 300


def payments_training_run(work: Path, env: dict[str, str]) -> None:
    """Runs the payments job on generated lines in a child process started with `env`."""
    input_dir = work / "input"
    input_dir.mkdir()
    (input_dir / "part-000.jsonl").write_bytes(
        b"".join(sample_data.generate_lines(TRAINING_LINES, seed=1, id_prefix="cds"))
    )
    command = [
        sys.executable,
        "-m",
        "bench.payments_job",
        "--input",
        str(input_dir),
        "--db-url",
        "jdbc:postgresql://unused",
        "--sinks",
        "discard",
        "--checkpoint-dir",
        str(work / "checkpoints"),
    ]
    result = subprocess.run(
        command,
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TRAINING_TIMEOUT_S,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the training run failed:\n{result.stderr[-3000:]}")


def build(force: bool = False) -> Optional[Path]:
    """This machine's archive, made by the payments training run if there is none."""
    return jvm_archive.build(payments_training_run, force=force)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.jvm_archive", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--force", action="store_true", help="make it again even if present")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        path = build(force=args.force)
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        # Only start-up time depends on the archive: say so, and let setup go on.
        print(f"jvm archive: not made ({error}); jobs start without it", file=sys.stderr)
        return 1
    if path is None:
        print("jvm archive: no Java found; nothing to do", file=sys.stderr)
        return 1
    print(
        f"jvm archive: {path} ({path.stat().st_size // 2**20} MB, "
        f"{time.monotonic() - started:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
