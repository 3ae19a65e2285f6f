"""The jobs' default restart strategy (flink-conf/config.yaml) covers a 5-minute outage with room
to spare, and brings a job back soon after the database does. No JVM: this reads the file."""

from jobs.flink_config import SAFETY_NET, job_defaults

OUTAGE_TO_SURVIVE_S = 5 * 60


def seconds(text: str) -> float:
    number, unit = text.split()
    return float(number) * {"ms": 0.001, "s": 1, "min": 60}[unit]


def backoff_window(settings) -> float:
    """Seconds of back-off alone before the strategy gives up, at the low end of the jitter."""
    prefix = "restart-strategy.exponential-delay."
    delay, cap = (
        seconds(settings[prefix + "initial-backoff"]),
        seconds(settings[prefix + "max-backoff"]),
    )
    multiplier = float(settings[prefix + "backoff-multiplier"])
    jitter = float(settings[prefix + "jitter-factor"])
    total = 0.0
    for _ in range(int(settings[prefix + "attempts-before-reset-backoff"])):
        total += delay * (1 - jitter)
        delay = min(delay * multiplier, cap)
    return total


def test_default_restart_strategy_rides_out_twice_the_outage_and_returns_quickly():
    settings = job_defaults()
    assert settings["restart-strategy.type"] == "exponential-delay"
    assert backoff_window(settings) >= 2 * OUTAGE_TO_SURVIVE_S
    # back within about 10 s of the database's return
    assert seconds(settings["restart-strategy.exponential-delay.max-backoff"]) <= 10
    # ... and the back-off only starts over after a quiet spell longer than the outage
    assert (
        seconds(settings["restart-strategy.exponential-delay.reset-backoff-threshold"])
        > OUTAGE_TO_SURVIVE_S
    )


def test_the_safety_net_agrees_with_the_file():
    """Where config.yaml is silent, the fallback is the same strategy, not the old fixed delay."""
    from_file = job_defaults()
    for key, value in SAFETY_NET.items():
        if key.startswith("restart-strategy."):
            assert from_file[key] == value, key
