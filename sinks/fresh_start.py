"""A job that restores no checkpoint must not write through sink ids that already applied input.

Such a start reads its input from the beginning: the same command run a second time, a job
restarted after its checkpoints were lost. Everything the earlier run committed would be applied
again (every balance doubled). The sink's commit log remembers every run of a sink id, so the
writer refuses such a start (`PgWriter`); `refuse_fresh_start` says the same before the job is
even built, with what to do in the words of the job's command line.

    with connect(...) as conn:
        refuse_fresh_start(conn, ["payments-books"], lambda: "Resume it with --from-checkpoint ...")
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from sinks.control_tables import commit_logs

__all__ = ["AppliedRuns", "FreshStartRefused", "applied_runs", "newest_retained_checkpoint"]
__all__ += ["refuse_fresh_start"]


class FreshStartRefused(RuntimeError):
    """The sink ids already applied input of an earlier run; nothing was written."""


@dataclass(frozen=True)
class AppliedRuns:
    """What a sink id's commit log says it applied."""

    sink_id: str
    commits: int
    newest: datetime

    def describe(self) -> str:
        # The same words as PgWriter.freshStartRefusal.
        newest = self.newest.astimezone(timezone.utc)
        return (
            f"sink '{self.sink_id}' refuses a fresh start: it already committed input of an "
            f"earlier run ({self.commits} transaction{'' if self.commits == 1 else 's'} in its "
            f"commit log, the newest at {newest:%Y-%m-%d %H:%M:%S} UTC)"
        )


def applied_runs(
    conn, sink_ids: Iterable[str], control_schema: str = "public"
) -> list[AppliedRuns]:
    """The sink ids among `sink_ids` whose commit log holds transactions, in the order given."""
    wanted = list(dict.fromkeys(sink_ids))
    if not wanted:
        return []
    logs = commit_logs(conn, control_schema, wanted)
    return [
        AppliedRuns(sink_id, logs[sink_id].commits, logs[sink_id].newest)
        for sink_id in wanted
        if sink_id in logs
    ]


def refuse_fresh_start(
    conn, sink_ids: Iterable[str], resume_hint: Callable[[], str], control_schema: str = "public"
) -> None:
    """Raise `FreshStartRefused` if any of `sink_ids` (those of the job's exactly-once sinks)
    already committed transactions. `resume_hint()` tells how this job resumes and how it
    applies its input again on purpose; it is only called for a refusal (it may look for
    checkpoints)."""
    applied = applied_runs(conn, sink_ids, control_schema)
    if applied:
        raise FreshStartRefused(
            "; ".join(entry.describe() for entry in applied)
            + ". A start that restores no checkpoint reads its input from the beginning and "
            "would apply what was applied then a second time. Nothing was written. " + resume_hint()
        )


def newest_retained_checkpoint(checkpoint_dir: Optional[str]) -> Optional[Path]:
    """The newest complete checkpoint under `checkpoint_dir` (`<job id>/chk-N` with a
    `_metadata` file: the newest `chk-N` of a killed job may lack it), or None."""
    if not checkpoint_dir or not Path(checkpoint_dir).is_dir():
        return None
    # A checkpoint is complete when its _metadata is written: that file's time orders them.
    complete = Path(checkpoint_dir).glob("*/chk-*/_metadata")
    newest = max(complete, key=lambda meta: meta.stat().st_mtime, default=None)
    return newest.parent if newest else None
