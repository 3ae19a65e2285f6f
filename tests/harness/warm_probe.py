"""Stands in for PyFlink's boot module in the warm worker pool's tests
(`tests/localenv/test_warm_workers.py`): reports, as one JSON line, what the process it runs
in looks like, then exits with the status given as its first argument (after
`--sleep SECONDS`, if given)."""

import json
import os
import sys
import time

if __name__ == "__main__":
    print(
        json.dumps(
            {
                "pid": os.getpid(),
                "parent": os.getppid(),
                "cwd": os.getcwd(),
                "marker": os.environ.get("WARM_PROBE_MARKER"),
                "argv": sys.argv[1:],
                "harness_preloaded": "pyflink.fn_execution.beam.beam_sdk_worker_main"
                in sys.modules,
            }
        ),
        flush=True,
    )
    print("to stderr", file=sys.stderr, flush=True)
    if len(sys.argv) > 2 and sys.argv[2] == "--sleep":
        time.sleep(float(sys.argv[3]))
    sys.exit(int(sys.argv[1]))
