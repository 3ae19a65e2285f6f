"""A run that cannot go on, in words: a refused start (an incompatible upgrade, a fresh start
that would apply input twice, input that cannot be read) or a failure for good, each with what
to do, in the command's flags.

The job names its own stateful operators (`explain_refusal`'s `stateful_uids`): the uids its
savepoints keep state under, so that a savepoint of another version is explained by name.
"""

import re
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple, Optional

from jobs.kit.config import JobConfig
from jobs.kit.environment import flink_settings
from jobs.progress import describe_error
from localenv.job_control import operator_id
from sinks.database import CannotConnect
from sinks.fresh_start import FreshStartRefused
from sinks.positions import InputChanged
from transforms.inputs import UnreadableInput

__all__ = [
    "RetainedCheckpoints",
    "explain_refusal",
    "failure_verdict",
    "resume_hint",
    "retained_checkpoints",
]


def explain_refusal(error: BaseException, stateful_uids: Sequence[str] = ()) -> Optional[str]:
    """What a refused start means and what to do, from Flink's or the sink's error; None if
    `error` is no refusal to start. `stateful_uids`: every operator of the job that holds
    state, by uid (a savepoint's state of an operator the job lacks is named by its uid)."""
    text = str(error)
    unmapped = re.search(r"Cannot map checkpoint/savepoint state for operator ([0-9a-f]{32})", text)
    if unmapped:
        what = unmapped_operator(unmapped.group(1), stateful_uids)
        return (
            f"incompatible upgrade: the savepoint holds state of {what}, which this version "
            "of the job does not have (a stateful operator was removed or its uid changed). "
            "Nothing was written. Deploy a version that keeps that operator under the same "
            "uid, or start from a savepoint taken by this version. Dropping the state "
            "(execution.state-recovery.ignore-unclaimed-state) would forget what it "
            "remembers, e.g. which event ids were seen: do that only on purpose."
        )
    if "StateMigrationException" in text or "incompatible" in text and "serializer" in text:
        return (
            "incompatible upgrade: the type of a stateful operator's state changed, so the "
            "savepoint's state cannot be read by this version. Nothing was written. Keep "
            "the state's type (or give the new operator a new uid and start it empty, on "
            "purpose), then start from the savepoint again."
        )
    renamed = re.search(
        r"restored state belongs to sink id '([^']+)' but this sink is "
        r"'([^']+)'",
        text,
    )
    if renamed:
        return (
            f"incompatible upgrade: the savepoint holds the state of sink id "
            f"'{renamed.group(1)}', but this job's sink is '{renamed.group(2)}'. Nothing was "
            "written. Keep --sink-id-prefix (and the sinks' uids) the same across upgrades; "
            "a new sink id is a new job: start it without a savepoint."
        )
    refused = re.search(r"sink '[^']+' refuses to restore checkpoint .*?instead\.", text, re.DOTALL)
    if refused:
        return refused.group(0) + " Nothing was written."
    if isinstance(error, (FreshStartRefused, InputChanged, UnreadableInput)):
        return text
    if isinstance(error, CannotConnect):  # the database check, before Flink or any data
        return f"{text}. Nothing was written; no job was started."
    unreadable = re.search(r"InputFileFault: (input file .*?\[[a-z0-9_]+\])", text, re.DOTALL)
    if unreadable:
        return (
            f"{unreadable.group(1)}\nThe job stopped at once: no retry can read this file. "
            "Lines committed before stay committed; the next run goes on from there."
        )
    # The writer's own refusal (the job's check before the start came first, unless another
    # run committed in between).
    fresh = re.search(r"sink '[^']+' refuses a fresh start: .*?new sink id\.", text, re.DOTALL)
    if fresh:
        return fresh.group(0) + " Nothing was written."
    return None


def unmapped_operator(op: str, stateful_uids: Sequence[str]) -> str:
    """The operator of Flink's id `op`, by its uid when it is one of `stateful_uids`."""
    try:
        # A Sink V2's committer is an operator of its own, uid "Sink Committer: <uid>".
        candidates = [*stateful_uids, *(f"Sink Committer: {u}" for u in stateful_uids)]
        uid = next((u for u in candidates if operator_id(u) == op), None)
    except Exception:  # no JVM at hand: the id alone still helps
        uid = None
    return f"operator '{uid}' (id {op})" if uid else f"operator id {op}"


class RetainedCheckpoints(NamedTuple):
    directory: str  # where the run keeps its checkpoints: a path, or a URI if not local
    newest: Optional[Path]  # its newest retained checkpoint, if it is a local directory


def retained_checkpoints(config: JobConfig) -> RetainedCheckpoints:
    """Where this run keeps its checkpoints, as `flink_settings` decides it (flag, config.yaml
    or var/checkpoints/<prefix>), and the newest one there; only a local directory can be
    looked into."""
    from urllib.parse import unquote, urlparse

    from sinks.fresh_start import newest_retained_checkpoint

    location = urlparse(flink_settings(config)["execution.checkpointing.dir"])
    if location.scheme != "file":
        return RetainedCheckpoints(location.geturl(), None)
    directory = unquote(location.path)
    return RetainedCheckpoints(directory, newest_retained_checkpoint(directory))


def resume_hint(config: JobConfig) -> str:
    """What to do instead of a fresh start, in this command's flags."""
    checkpoints = retained_checkpoints(config)
    again = "To apply the input again on purpose, use a new --sink-id-prefix."
    if checkpoints.newest:
        return (
            f"To resume the earlier run, start it with --from-checkpoint {checkpoints.newest} "
            f"(the newest retained checkpoint) or --from-savepoint PATH. {again}"
        )
    return (
        f"No retained checkpoint is under {checkpoints.directory}: if the earlier run finished, "
        "its input is applied already; if it was stopped or killed, resume it with "
        f"--from-savepoint PATH or --from-checkpoint <its newest chk-N with a _metadata file>. "
        f"{again}"
    )


def failure_verdict(config: JobConfig, error: BaseException) -> str:
    """A failed run's last line: the root cause in one line, and where to resume from. In
    checkpoint scope the database says where the sources stand, so running again goes on."""
    checkpoints = retained_checkpoints(config)
    newest = checkpoints.newest
    if config.commit_scope == "checkpoint":
        resume = "run the same command again (it goes on where the database says)" + (
            f", or resume from the newest retained checkpoint: --from-checkpoint {newest}"
            if newest
            else ""
        )
    elif newest:
        resume = f"resume with --from-checkpoint {newest} (the newest retained checkpoint)"
    else:
        resume = (
            f"no retained checkpoint under {checkpoints.directory}: resume with "
            "--from-savepoint PATH"
        )
    return f"the job failed: {describe_error(error)}. To go on, {resume}."
