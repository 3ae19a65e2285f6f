"""Exactly-once settings in one visible place: defaults from `flink-conf/config.yaml`
(Flink 2.3's nested YAML), overridden by command-line flags.

Only job-level keys are taken from the file (checkpointing, restart strategy, state backend,
Python execution); cluster keys stay with the cluster.
"""

from pathlib import Path
from typing import Optional

from localenv.flink import read_config

JOB_KEY_PREFIXES = ("execution.", "restart-strategy.", "state.", "python.", "pipeline.", "table.")

# Used only where config.yaml is silent, so that a job is never without checkpoints.
SAFETY_NET = {
    "execution.checkpointing.interval": "2 s",
    "execution.checkpointing.mode": "EXACTLY_ONCE",
    "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
    "restart-strategy.type": "exponential-delay",  # see config.yaml for the reasoning
    "restart-strategy.exponential-delay.initial-backoff": "1 s",
    "restart-strategy.exponential-delay.max-backoff": "10 s",
    "restart-strategy.exponential-delay.attempts-before-reset-backoff": "70",
}


def job_defaults(conf_dir: Optional[Path] = None) -> dict[str, str]:
    """Job-level settings of `<conf_dir>/config.yaml` as flat Flink keys."""
    from_file = {k: v for k, v in read_config(conf_dir).items() if k.startswith(JOB_KEY_PREFIXES)}
    return {**SAFETY_NET, **from_file}
