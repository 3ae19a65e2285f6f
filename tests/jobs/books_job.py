"""`python -m jobs.payments` for the visibility tests, with its file source slowed down and, if
`TPC_TEST_FAIL_ONCE_MARKER` names a file that does not exist yet, a Python exception once
mid-stream (see `tests.harness.faults.throttled_lines`)."""

import os
import sys

import jobs.payments as payments


def main(argv) -> int:
    from tests.harness.faults import throttled_lines

    marker = os.environ.get("TPC_TEST_FAIL_ONCE_MARKER")
    # The exception must come before the sink's pause (its 15th non-empty pre-commit, about the
    # 8th checkpoint with two subtasks, 2.4 s into the stream at 300 ms): at a worker's 1,000th
    # line, not after 3 s of its time, which a quiet machine once reached only after the pause.
    payments.line_source = lambda env, config: throttled_lines(
        payments.file_lines(env, config), marker, after_seconds=0, after_records=1_000
    )
    return payments.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
