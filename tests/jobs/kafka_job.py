"""`python -m jobs.payments` for the Kafka kill tests, plus one flag a real run must not have:
`--ledger-sink-mode at_least_once`, the at-least-once control's ledger sink."""

import sys

import jobs.payments as payments


def main(argv) -> int:
    if "--ledger-sink-mode" in argv:
        at = argv.index("--ledger-sink-mode")
        mode = argv[at + 1]
        del argv[at : at + 2]
        build_sinks = payments.build_sinks
        payments.build_sinks = lambda config, **modes: build_sinks(
            config, **{"ledger": mode, **modes}
        )
    return payments.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
