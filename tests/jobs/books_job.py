"""`python -m jobs.payments` for the visibility tests, with its file source slowed down and, if
`TPC_TEST_FAIL_ONCE_MARKER` names a file that does not exist yet, a Python exception once
mid-stream (see `tests.harness.faults.throttled_lines`)."""

import os
import sys

import jobs.payments as payments


def main(argv) -> int:
    from tests.harness.faults import throttled_lines

    marker = os.environ.get("TPC_TEST_FAIL_ONCE_MARKER")
    payments.line_source = lambda env, config: throttled_lines(env, config, marker)
    return payments.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
