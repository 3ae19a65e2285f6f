"""Exactly-once settings in one visible place: defaults from `flink-conf/config.yaml`
(Flink 2.3's nested YAML), overridden by command-line flags.

Only job-level keys are taken from the file (checkpointing, restart strategy, state backend,
Python execution); cluster keys stay with the cluster.
"""

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Optional

import yaml

from localenv.flink import FLINK_CONF_DIR

JOB_KEY_PREFIXES = ("execution.", "restart-strategy.", "state.", "python.", "pipeline.", "table.")


def flatten(tree: Mapping, prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return flat


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
    path = Path(conf_dir or FLINK_CONF_DIR) / "config.yaml"
    tree = yaml.safe_load(path.read_text()) or {} if path.is_file() else {}
    from_file = {k: v for k, v in flatten(tree).items() if k.startswith(JOB_KEY_PREFIXES)}
    return {**SAFETY_NET, **from_file}


def file_uri(path: str) -> str:
    """A checkpoint location as Flink wants it: URIs pass through, local paths become file://."""
    return path if "://" in path else "file://" + os.path.abspath(path)
